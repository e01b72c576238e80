"""The reference gradients (convt_conformance/oracle/gradients.py), cross-checked three ways: the matrix
form (dL/dx = V g, dL/dw from the Jacobian), central finite differences of L = <g, convT(x, w, b)>
in float64, and the adjoint identity; plus the definition's treatment of non-finite values."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convt_conformance.oracle.forward import conv_forward, conv_transpose_scatter
from convt_conformance.oracle.gradients import (
    grad_bias,
    grad_input,
    grad_weight,
    matrix_grad_input,
    weight_jacobian_gradient,
)

EXAMPLES = 1000 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 60
_GEOM = ("stride", "padding", "output_padding", "dilation", "groups")


@st.composite
def small_configurations(draw):
    """Valid configurations small enough for the dense Jacobian and per-element differences."""
    rank = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cog = draw(st.integers(1, 2))
    n = draw(st.integers(0, 2))
    max_sp, max_k = {1: (5, 3), 2: (3, 2), 3: (2, 2)}[rank]
    sp = tuple(draw(st.integers(1, max_sp)) for _ in range(rank))
    k = tuple(draw(st.integers(1, max_k)) for _ in range(rank))
    s = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    d = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    full = [(a - 1) * si + di * (ki - 1) + 1 + o for a, si, di, ki, o in zip(sp, s, d, k, op)]
    pads = tuple((draw(st.integers(0, (f - 1) // 2)), draw(st.integers(0, (f - 1) // 2))) for f in full)
    return dict(n=n, cin=cin, cog=cog, sp=sp, k=k, stride=s, dilation=d, output_padding=op,
                padding=pads, groups=groups, seed=draw(st.integers(0, 2**32 - 1)))


def _problem(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.normal(size=(cfg["n"], cfg["cin"], *cfg["sp"]))
    w = rng.normal(size=(cfg["cin"], cfg["cog"], *cfg["k"]))
    b = rng.normal(size=(cfg["cog"] * cfg["groups"],))
    kw = {key: cfg[key] for key in _GEOM}
    y = conv_transpose_scatter(x, w, b, **kw)
    g = rng.normal(size=y.shape)
    return x, w, b, g, kw


def _loss(x, w, b, g, kw):
    return float(np.sum(g * conv_transpose_scatter(x, w, b, **kw)))


def _central_differences(f, a, h=0.5):
    """d f / d a by central differences, every element (f is linear in a: exact up to rounding)."""
    out = np.zeros(a.shape)
    for idx in np.ndindex(*a.shape):
        ap, am = a.copy(), a.copy()
        ap[idx] += h
        am[idx] -= h
        out[idx] = (f(ap) - f(am)) / (2 * h)
    return out


def _close(a, b, scale):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * max(1.0, scale))


@settings(max_examples=EXAMPLES)
@given(small_configurations())
def test_matrix_and_jacobian_forms(cfg):
    """dL/dx = V g (V the forward conv's matrix) and = the independent forward correlation;
    dL/dw from the Jacobian columns y(e_k)."""
    x, w, b, g, kw = _problem(cfg)
    scale = float(np.abs(g).sum() * (np.abs(w).sum() + np.abs(x).sum()))
    gi = grad_input(x, w, g, **kw)
    geo = dict(stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"], groups=kw["groups"])
    _close(gi, matrix_grad_input(w, g, in_spatial=cfg["sp"], **geo), scale)
    _close(gi, conv_forward(g, w, in_spatial=cfg["sp"], **geo), scale)
    _close(grad_weight(x, w, g, **kw), weight_jacobian_gradient(x, w.shape, g, **geo), scale)


@settings(max_examples=EXAMPLES)
@given(small_configurations())
def test_finite_differences(cfg):
    """Central differences in float64 of L = <g, convT(x, w, b)>, every element of x, w and b."""
    x, w, b, g, kw = _problem(cfg)
    scale = float(np.abs(g).sum() * (np.abs(w).sum() + np.abs(x).sum() + 1))
    _close(grad_input(x, w, g, **kw), _central_differences(lambda a: _loss(a, w, b, g, kw), x), scale)
    _close(grad_weight(x, w, g, **kw), _central_differences(lambda a: _loss(x, a, b, g, kw), w), scale)
    _close(grad_bias(g), _central_differences(lambda a: _loss(x, w, a, g, kw), b), scale)


@settings(max_examples=EXAMPLES)
@given(small_configurations())
def test_adjoint_identity(cfg):
    """<dL/dx, x'> = <g, convT(x', w)>, <dL/dw, w'> = <g, convT(x, w')>, <dL/db, b'> = <g, b'>."""
    x, w, b, g, kw = _problem(cfg)
    rng = np.random.default_rng(cfg["seed"] + 1)
    x2, w2, b2 = rng.normal(size=x.shape), rng.normal(size=w.shape), rng.normal(size=b.shape)
    zeros = np.zeros_like(x)
    pairs = [
        (np.vdot(grad_input(x, w, g, **kw), x2), np.vdot(g, conv_transpose_scatter(x2, w, None, **kw))),
        (np.vdot(grad_weight(x, w, g, **kw), w2), np.vdot(g, conv_transpose_scatter(x, w2, None, **kw))),
        (np.vdot(grad_bias(g), b2), np.vdot(g, conv_transpose_scatter(zeros, w, b2, **kw))),
    ]
    for lhs, rhs in pairs:
        assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (lhs, rhs)


def test_nonfinite_values_meet_no_structural_zero():
    """The definition pairs only positions inside the output: an Inf input element whose every
    product is cropped leaves dL/dw finite (a padded implementation would give Inf * 0 = NaN),
    and a NaN weight tap reaches dL/dx only at input positions that tap pairs with an output."""
    kw = dict(stride=(1,), padding=((1, 1),), output_padding=(0,), dilation=(1,), groups=1)
    x = np.array([[[np.inf, 2.0, 3.0]]])
    w = np.array([[[1.5]]])
    g = np.array([[[-2.0]]])  # output length 3 - 2 = 1: only x[1] reaches it
    assert conv_transpose_scatter(x, w, **kw).shape == g.shape
    np.testing.assert_array_equal(grad_weight(x, w, g, **kw), x[:, :, 1:2] * g)
    w_nan = np.array([[[np.nan, 1.0]]])  # tap 0 of input i lands on output i - 1
    kw2 = dict(kw, padding=((1, 0),))
    g2 = np.ones_like(conv_transpose_scatter(np.ones((1, 1, 3)), w_nan, **kw2))
    gi = grad_input(np.ones((1, 1, 3)), w_nan, g2, **kw2)
    assert np.isnan(gi[0, 0, 1:]).all() and np.isfinite(gi[0, 0, 0])  # input 0's tap 0 is cropped


def test_cotangent_shape_is_checked():
    with pytest.raises(ValueError, match="cotangent shape"):
        grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), np.ones((1, 1, 3)), stride=(1,),
                   padding=((0, 0),), output_padding=(0,), dilation=(1,))
