"""String padding: each word's resolution against the frameworks' own definitions of it.

Expectations come from the frameworks at test time (ONNX's reference ConvTranspose with
``auto_pad``, JAX's ``lax.conv_transpose`` string padding, TF's ``'SAME'``/``'VALID'``), compared
with the NumPy reference run on the resolved canonical pads; nothing is hard-coded here.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_file
from convt_conformance.model.string_padding import MODES, resolve
from convt_conformance.oracle import forward as ref

# a small grid: kernels odd and even, stride <, = and > kernel, dilation, output_padding
GRID = [(n, k, s, d, op) for n, k, s, d, op in itertools.product((3,), (1, 2, 3, 4), (1, 2, 3), (1, 2), (0, 1))
        if op < max(s, d)]


def _reference(x, w, res, s, d):
    return ref.conv_transpose_scatter(x, w, None, stride=(s,), padding=res.padding,
                                      output_padding=res.output_padding, dilation=(d,), groups=1)


def _tensors(n, k):
    rng = np.random.default_rng(n * 100 + k)
    return rng.integers(-3, 4, (1, 2, n)).astype(np.float64), rng.integers(-3, 4, (2, 3, k)).astype(np.float64)


def _resolve(mode, n, k, s, d, op):
    try:
        return resolve(mode, (n,), (k,), (s,), (d,), (op,))
    except ValueError:
        return None


@pytest.mark.parametrize("mode,auto_pad", [("valid", "VALID"), ("same_upper", "SAME_UPPER"),
                                           ("same_lower", "SAME_LOWER"), ("same", "SAME_UPPER")])
def test_modes_match_onnx_reference(mode, auto_pad):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    compared = 0
    for n, k, s, d, op in GRID:
        res = _resolve(mode, n, k, s, d, op)
        total = d * (k - 1) + 1 + op - s
        if res is None:  # inexpressible: only ONNX's leading extension (negative begin pad)
            assert mode in ("same_upper", "same_lower") and total < 0
            continue
        if op >= s:
            continue  # ONNX's reference (col2im) computes output_padding >= stride wrongly: not the subject
        if mode == "same" and total < 0:
            continue  # ONNX splits a negative total (a leading extension); `same` appends (TF/JAX)
        x, w = _tensors(n, k)
        node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], auto_pad=auto_pad, strides=[s],
                                dilations=[d], output_padding=[op])
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.DOUBLE, None),
                                                helper.make_tensor_value_info("W", TensorProto.DOUBLE, None)],
                                  [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        (y,) = ReferenceEvaluator(model).run(None, {"X": x, "W": w})
        expected = _reference(x, w, res, s, d)
        assert y.shape == expected.shape and res.out_spatial == y.shape[2:], (mode, n, k, s, d, op)
        np.testing.assert_array_equal(y, expected, err_msg=str((mode, n, k, s, d, op)))
        compared += 1
    assert compared >= 15


@pytest.mark.parametrize("mode,jax_word", [("same", "SAME"), ("valid", "VALID")])
def test_modes_against_jax_strings(mode, jax_word):
    """JAX's 'SAME' is the format's `same` everywhere; its 'VALID' differs exactly where the stride
    exceeds the dilated kernel (the finding in known_disagreements.yaml)."""
    pytest.importorskip("jax")
    import jax

    jax.config.update("jax_enable_x64", True)
    from jax import lax

    compared = 0
    for n, k, s, d, op in GRID:
        if op:
            continue  # JAX's string padding has no output_padding
        res = _resolve(mode, n, k, s, d, 0)
        x, w = _tensors(n, k)
        y = np.asarray(lax.conv_transpose(x, w, (s,), jax_word, rhs_dilation=(d,),
                                          dimension_numbers=("NCH", "OIH", "NCH"), transpose_kernel=True,
                                          precision=lax.Precision.HIGHEST))
        expected = _reference(x, w, res, s, d)
        if mode == "valid" and s > d * (k - 1) + 1:
            assert y.shape[2] == expected.shape[2] + s - (d * (k - 1) + 1)
        else:
            np.testing.assert_allclose(y, expected, atol=1e-9, err_msg=str((mode, n, k, s, d)))
            compared += 1
    assert compared >= 10


def test_modes_against_tensorflow_strings():
    tf = pytest.importorskip("tensorflow")
    compared = set()
    for mode, word in (("same", "SAME"), ("valid", "VALID")):
        for n, k, s, d, op in GRID:
            if d > 1 or (mode == "same" and op):
                continue  # TF CPU has no dilated transpose; no output_padding under SAME
            res = _resolve(mode, n, k, s, d, op)
            x, w = _tensors(n, k)
            y = tf.nn.conv1d_transpose(np.moveaxis(x, 1, -1), np.transpose(w, (2, 1, 0)),
                                       [1, *res.out_spatial, w.shape[1]], s, word).numpy()
            np.testing.assert_allclose(np.moveaxis(y, -1, 1), _reference(x, w, res, s, d), atol=1e-9,
                                       err_msg=str((mode, n, k, s, d, op)))
            compared.add(mode)
    assert compared == {"same", "valid"}


def _write(tmp_path, padding, extra=""):
    f = tmp_path / "c.yaml"
    f.write_text(f"""cases:
  - id: strpad-one
    input: {{random: {{shape: [1, 1, 3], distribution: integers, seed: 1}}}}
    weight: {{random: {{shape: [1, 1, 1], distribution: integers, seed: 2}}}}
    stride: 3
    padding: {padding}
{extra}    expected: {{shape: [1, 1, 9]}}
""")
    return f


@pytest.mark.parametrize("word", ["SAME", "full", "same-upper"])
def test_unknown_word_is_rejected_with_file_case_and_key(tmp_path, word):
    f = _write(tmp_path, word)
    result = load_file(f)
    assert result.cases == []
    p = result.problems[0]
    assert (p.file, p.case, p.key) == (str(f), "strpad-one", "cases[0].padding"), str(p)


def test_inexpressible_word_is_an_invalid_configuration(tmp_path):
    # kernel 1, stride 3: ONNX's same_upper wants a leading extension (total -2 -> begin -1)
    result = load_file(_write(tmp_path, "same_upper"))
    assert result.cases == []
    assert any("same_upper" in p.message and "leading extension" in p.message for p in result.problems)


def test_case_records_mode_and_resolution(tmp_path):
    (case,) = load_file(_write(tmp_path, "same")).cases
    res = resolve("same", (3,), (1,), (3,), (1,), (0,))
    assert case.padding_mode == "same" and case.padding == res.padding
    assert case.output_padding == res.output_padding and case.output_shape[2:] == res.out_spatial
    params = case.params()
    assert params["padding_mode"] == "same" and params["mode_output_padding"] == [0]
    assert params["padding"] == [list(p) for p in res.padding]


def test_every_mode_is_in_the_schema():
    from convt_conformance.loading.schema import CASE_SCHEMA

    assert set(CASE_SCHEMA["properties"]["padding"]["anyOf"][0]["enum"]) == set(MODES)


def test_sweep_keeps_the_word():

    result = load_file(CASES_DIR / "sweeps" / "string_padding.yaml")
    assert result.problems == []
    assert {c.padding_mode for c in result.cases} == set(MODES)
    assert {c.rank for c in result.cases} == {1, 2, 3}
