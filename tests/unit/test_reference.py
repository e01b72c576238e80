"""The NumPy reference: documents' cases exactly, three formulations agree, adjoint identity."""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from convt_conformance.oracle.forward import (
    ConfigurationError,
    conv_forward,
    conv_transpose_matrix,
    conv_transpose_recipe,
    conv_transpose_scatter,
    forward_matrix,
)
from tests.conftest import DATA

DOCS = {c.id: c for c in load_cases([CASES_DIR / "documents"]).cases}
FORMULATIONS = [conv_transpose_scatter, conv_transpose_recipe, conv_transpose_matrix]


def _kw(c):
    return dict(stride=c.stride, padding=c.padding, output_padding=c.output_padding,
                dilation=c.dilation, groups=c.groups)


@pytest.mark.parametrize("case_id", sorted(DOCS))
@pytest.mark.parametrize("formulation", FORMULATIONS, ids=lambda f: f.__name__)
def test_documents_cases_exact(case_id, formulation):
    c = DOCS[case_id]
    x, w, b = c.tensors("float64")
    out = formulation(x, w, b, **_kw(c))
    assert out.shape == c.expected_shape
    if c.expected_values is not None:
        np.testing.assert_array_equal(out, c.expected_values)


def test_documents_matrix_example():
    """V built by the reference equals the documents' kernel2matrix W; V X = Y; W^T Y = case."""
    d = yaml.safe_load((DATA / "d2l_matrix.yaml").read_text())
    k = np.array(d["K"], float).reshape(1, 1, 2, 2)
    v = forward_matrix(k, in_spatial=(2, 2), out_spatial=(3, 3), stride=(1, 1),
                       padding=((0, 0), (0, 0)), dilation=(1, 1))
    np.testing.assert_array_equal(v, np.array(d["W"], float))
    np.testing.assert_array_equal(v @ np.ravel(d["X"]), np.ravel(d["Y"]))
    c = DOCS[d["case"]]
    np.testing.assert_array_equal(c.input.values.ravel(), np.ravel(d["Y"]))
    np.testing.assert_array_equal(v.T @ np.ravel(d["Y"]), c.expected_values.ravel())


def test_nearest_upsampling_equivalence():
    """Seed 002: all-ones s x s kernel, stride s, groups = C reproduces nearest upsampling."""
    rng = np.random.default_rng(0)
    for s in (2, 3):
        x = rng.normal(size=(2, 3, 4, 5))
        w = np.ones((3, 1, s, s))
        out = conv_transpose_scatter(x, w, stride=(s, s), padding=((0, 0), (0, 0)),
                                     output_padding=(0, 0), dilation=(1, 1), groups=3)
        np.testing.assert_array_equal(out, x.repeat(s, axis=2).repeat(s, axis=3))


@st.composite
def configurations(draw):
    rank = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 2))
    cog = draw(st.integers(1, 2))
    n = draw(st.integers(0, 2))
    max_sp = {1: 6, 2: 4, 3: 3}[rank]
    sp = tuple(draw(st.integers(1, max_sp)) for _ in range(rank))
    k = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    s = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    d = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    full = [(a - 1) * si + di * (ki - 1) + 1 + o for a, si, di, ki, o in zip(sp, s, d, k, op)]
    pads = tuple((draw(st.integers(0, (f - 1) // 2)), draw(st.integers(0, (f - 1) // 2))) for f in full)
    seed = draw(st.integers(0, 2**32 - 1))
    bias = draw(st.booleans())
    return dict(n=n, cin=cin, cog=cog, sp=sp, k=k, stride=s, dilation=d, output_padding=op,
                padding=pads, groups=groups, seed=seed, bias=bias)


def _tensors(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.normal(size=(cfg["n"], cfg["cin"], *cfg["sp"]))
    w = rng.normal(size=(cfg["cin"], cfg["cog"], *cfg["k"]))
    b = rng.normal(size=(cfg["cog"] * cfg["groups"],)) if cfg["bias"] else None
    kw = {k: cfg[k] for k in ("stride", "padding", "output_padding", "dilation", "groups")}
    return x, w, b, kw


REFERENCE_EXAMPLES = 2000 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 250


@settings(max_examples=REFERENCE_EXAMPLES)
@given(configurations())
def test_formulations_agree_and_adjoint_identity(cfg):
    """On >= 250 random valid configurations (CI profile; fixed seed): the scatter definition,
    the matrix form and the recipe agree, the output-size rule holds, and
    <conv(y), x> = <y, convT(x)> with conv the independent forward correlation."""
    x, w, b, kw = _tensors(cfg)
    a = conv_transpose_scatter(x, w, b, **kw)
    np.testing.assert_allclose(conv_transpose_recipe(x, w, b, **kw), a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_transpose_matrix(x, w, b, **kw), a, rtol=1e-12, atol=1e-12)
    for ax in range(len(cfg["sp"])):
        assert a.shape[2 + ax] == ((cfg["sp"][ax] - 1) * kw["stride"][ax] - sum(kw["padding"][ax])
                                   + kw["dilation"][ax] * (cfg["k"][ax] - 1) + kw["output_padding"][ax] + 1)
    out = conv_transpose_scatter(x, w, None, **kw)
    y = np.random.default_rng(cfg["seed"] + 1).normal(size=out.shape)
    cy = conv_forward(y, w, stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"],
                      groups=kw["groups"], in_spatial=cfg["sp"])
    lhs, rhs = float(np.vdot(cy, x)), float(np.vdot(y, out))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize("bad", [
    dict(stride=(0,)), dict(padding=((-1, 0),)), dict(output_padding=(2,)), dict(dilation=(0,)),
    dict(padding=((5, 5),)),
])
def test_invalid_configurations_raise(bad):
    kw = dict(stride=(2,), padding=((0, 0),), output_padding=(0,), dilation=(1,), groups=1)
    kw.update(bad)
    with pytest.raises(ConfigurationError):
        conv_transpose_scatter(np.ones((1, 1, 3)), np.ones((1, 1, 2)), **kw)


def test_zero_size_batch():
    out = conv_transpose_scatter(np.ones((0, 2, 3, 3)), np.ones((2, 3, 2, 2)), stride=(2, 2),
                                 padding=((0, 0), (0, 0)), output_padding=(1, 1), dilation=(1, 1))
    assert out.shape == (0, 3, 7, 7)
