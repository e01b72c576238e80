"""The LiteRT adapter (tf.nn.conv{1,2,3}d_transpose converted by TensorFlow's TFLite converter, run
by the LiteRT interpreter) against the reference.

Skips with a reason when ai_edge_litert or TensorFlow is not installed. Known LiteRT bugs come from
known_disagreements.yaml.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install -e '.[litert]')")
pytest.importorskip("tensorflow", reason="tensorflow is not installed (the LiteRT column converts with it)")

from convt_conformance.adapters.litert import adapter as lr_adapter  # noqa: E402
from convt_conformance.adapters.litert import calls as lr_calls  # noqa: E402
from convt_conformance.adapters.litert import padding as lr_padding  # noqa: E402
from convt_conformance.checking.check import run_check  # noqa: E402
from convt_conformance.checking.invalid_rules import refusal_of  # noqa: E402
from convt_conformance.library import KNOWN_FILE  # noqa: E402
from convt_conformance.loading.case_checks import case_from_raw  # noqa: E402
from convt_conformance.loading.cases import load_cases  # noqa: E402
from convt_conformance.loading.known import load_known  # noqa: E402
from tests.conftest import DATA, integer_case  # noqa: E402

PROBES = {c.id: c for c in load_cases([DATA / "probes"]).cases}
KNOWN, _ = load_known(KNOWN_FILE)


@pytest.fixture(scope="module")
def lr(shared_adapter):
    return shared_adapter("litert")


def _case(**keys):
    """A case from a mapping (integer data: exact in float16 and float32)."""
    return integer_case("test_litert_adapter.py", ["float32", "float16"], **keys)


# (case, the operator the converter must produce, its options that must be recorded)
CONFIGS = [
    (_case(id="lr-valid-outpad-bias", stride=[2, 3], output_padding=[1, 2], bias={"values": [1, -2, 3]},
           expected_shape=[1, 3, 7, 14]), "TRANSPOSE_CONV", {"padding": "VALID", "strideH": 2, "strideW": 3}),
    (_case(id="lr-same", spatial=[3, 4], kernel=[3, 3], stride=2, padding=[[0, 1], [0, 1]],
           expected_shape=[1, 3, 6, 8]), "TRANSPOSE_CONV", {"padding": "SAME", "strideH": 2, "strideW": 2}),
    (_case(id="lr-1d-valid", spatial=[5], kernel=[3], stride=2, expected_shape=[1, 3, 11]),
     "TRANSPOSE_CONV", {"padding": "VALID", "strideH": 1, "strideW": 2}),
    (_case(id="lr-3d-dilated", spatial=[2, 3, 2], kernel=[2, 2, 1], stride=[1, 2, 2], dilation=[2, 1, 1],
           expected_shape=[1, 3, 4, 6, 3]), "CONV_3D_TRANSPOSE",
     {"padding": "VALID", "strideD": 1, "strideH": 2, "strideW": 2, "dilationDFactor": 2}),
]


@pytest.mark.parametrize("case, op, options", CONFIGS, ids=[c.id for c, _, _ in CONFIGS])
def test_configurations_match_the_reference_and_record_the_converted_op(lr, case, op, options):
    for api, dtype in (("conv_transpose", "float32"), ("conv_transpose:builtin", "float32"),
                       ("conv_transpose:fp16_weights", "float16")):
        rec = run_check(case, lr, api, "cpu", dtype, "strict", KNOWN)
        assert rec["status"] == "pass", (api, dtype, rec["status"], rec["message"])
        assert rec["max_abs_err"] == 0.0 and rec["native_dtype"] == "float32"
        call = rec["native_call"]
        assert not call["weight_flip"] and call["arguments"]["call"] == "litert_run"
        ops = {o["op"]: o for o in call["arguments"]["converted_ops"]}
        assert op in ops and {k: ops[op]["options"][k] for k in options} == options, ops
        if api.endswith(":fp16_weights"):  # the filter stored in float16, dequantized before the op
            assert rec["compute_dtype"] == "float32"
            assert ops["DEQUANTIZE"]["inputs"][0]["type"] == "FLOAT16"
        else:
            assert "DEQUANTIZE" not in ops
        plan = call["precision"]["execution_plan"]
        assert ("DELEGATE" in plan) == (api != "conv_transpose:builtin" and op == "TRANSPOSE_CONV"), plan


def test_padding_words_carry_only_their_own_pads():
    same = CONFIGS[1][0]
    assert lr_padding.padding_for(same)[:2] == ("SAME", [6, 8])
    assert lr_padding.padding_for(CONFIGS[0][0])[:2] == ("VALID", [7, 14])
    word, shape, why = lr_padding.padding_for(PROBES["probe-2d-unequal-pads"])
    assert (word, shape) == (None, None) and "neither VALID's" in why and "TF Select ops" in why
    # SAME's larger half is at the end: (1, 0) is not SAME's split of a total of 1
    flipped = _case(id="lr-same-flipped", spatial=[3, 4], kernel=[3, 3], stride=2, padding=[[1, 0], [1, 0]],
                    expected_shape=[1, 3, 6, 8])
    assert lr_padding.padding_for(flipped)[0] is None
    assert lr_padding.same_pads(3, 6, 3, 2, 1) == (0, 1) and lr_padding.same_pads(3, 7, 3, 2, 1) is None


def test_weight_slip_cannot_pass(lr, monkeypatch):
    """A flipped kernel or one with H and W swapped fails the asymmetric probe in every forward column."""
    case = CONFIGS[0][0]
    clean_run = lr.run
    slips = {"spatial-flip": lambda w: w[..., ::-1, ::-1].copy(),
             "h-w-swap": lambda w: np.ascontiguousarray(np.swapaxes(w, 2, 3))}
    square = _case(id="lr-square", spatial=[3, 3], kernel=[3, 3], stride=2, expected_shape=[1, 3, 7, 7])
    for api, dtype in (("conv_transpose", "float32"), ("conv_transpose:builtin", "float32"),
                       ("conv_transpose:fp16_weights", "float16")):
        for slip, transform in slips.items():
            target = square if slip == "h-w-swap" else case
            monkeypatch.setattr(lr, "run", lambda case, api, device, dtype, x, w, b, t=transform, **kw:
                                clean_run(case, api, device, dtype, x, t(w), b, **kw))
            rec = run_check(target, lr, api, "cpu", dtype, "strict", [])
            monkeypatch.setattr(lr, "run", clean_run)
            assert rec["status"] in ("fail", "error"), (api, slip, rec["status"], rec["message"])


@pytest.mark.parametrize("api, case_id, dtype, words", [
    ("conv_transpose", "lr-valid-outpad-bias", "float64", "float64 transposed convolution"),
    ("conv_transpose:builtin", "lr-1d-valid", "float16", "'tf.Conv2DBackpropInput' op is neither a custom op"),
    ("conv_transpose", "probe-3d", "float16", "'tf.Conv3DBackpropInputV2' op is neither a custom op nor a flex op"),
    ("conv_transpose", "probe-3d", "bfloat16", "Unsupported TensorFlow type `<dtype: 'bfloat16'>`"),
    ("conv_transpose", "lr-2d-dilated", "float32", "TRANSPOSE_CONV has no dilation"),
    ("conv_transpose", "probe-2d-groups", "float32", "TFLite has no grouped transposed convolution"),
    ("conv_transpose", "probe-2d-unequal-pads", "float32", "take padding SAME or VALID only"),
    ("conv_transpose:fp16_weights", "probe-3d", "float32", "the fp16_weights column runs the float16 checks"),
    ("conv_transpose:grad_input", "probe-3d", "float32", "LiteRT has no automatic differentiation"),
])
def test_refusals_are_unsupported_with_the_converters_words(lr, api, case_id, dtype, words):
    dilated = _case(id="lr-2d-dilated", spatial=[3, 3], kernel=[2, 2], dilation=2, expected_shape=[1, 3, 5, 5])
    case = PROBES.get(case_id) or next(c for c in (dilated, *(c for c, _, _ in CONFIGS)) if c.id == case_id)
    rec = run_check(case, lr, api, "cpu", dtype, "strict", KNOWN)
    assert rec["status"] == "unsupported", (rec["status"], rec["message"])
    assert words in rec["message"], rec["message"]


@pytest.mark.parametrize("rank, dtype, dilation, words", [
    (2, "float16", 1, "'tf.Conv2DBackpropInput' op is neither a custom op nor a flex op"),
    (2, "float64", 1, "'tf.Conv2DBackpropInput' op is neither a custom op nor a flex op"),
    (3, "float64", 1, "'tf.Conv3DBackpropInputV2' op is neither a custom op nor a flex op"),
    (1, "bfloat16", 1, "Unsupported TensorFlow type `<dtype: 'bfloat16'>`"),
    (2, "float32", 2, "'tf.Conv2DBackpropInput' op is neither a custom op nor a flex op"),
])
def test_the_declared_refusals_are_what_the_installed_converter_says(rank, dtype, dilation, words):
    """supports() declares these refusals without converting on the release they were seen on
    (adapter.SEEN_ON): the converter itself must still say so, and rejections.yaml must match it."""
    import tensorflow as tf

    if tf.__version__ != lr_adapter.SEEN_ON:
        pytest.skip(f"the refusals were seen on tensorflow {lr_adapter.SEEN_ON}, not {tf.__version__}")
    x = np.ones((1, *[3] * rank, 2))
    w = np.ones((*[2] * rank, 3, 2))
    out = [1, *[(3 - 1) + dilation * (2 - 1) + 1] * rank, 3]
    with pytest.raises(Exception) as info:
        lr_calls.litert_run(x, w, None, dtype=dtype, output_shape=out, strides=[1] * rank, padding="VALID",
                            dilations=[dilation] * rank, fp16_weights=False, threads=1)
    text = f"{type(info.value).__name__}: {info.value}"
    assert words in text, text[:600]
    assert any(n.startswith("refused by: the converter") for n in info.value.__notes__)
    refusal, seen = refusal_of("litert", text)
    assert refusal is not None and seen, text[:300]


def test_invalid_output_shape_reaches_the_interpreter_and_is_refused_by_the_builtin_kernel(lr):
    """output_padding 2 = stride folded into output_shape: an output the input cannot produce."""
    raw = {"id": "lr-outpad-at-stride", "input": {"shape": [1, 1, 3], "values": [1, 2, 3]},
           "weight": {"shape": [1, 1, 2], "values": [1, 1]}, "stride": 2, "output_padding": 2,
           "expected": {"error": "output_padding must be smaller than max(stride, dilation)"}}
    problems: list = []
    invalid = case_from_raw(raw, "test_litert_adapter.py", "cases[0]", problems)
    assert invalid is not None and invalid.expected_error, problems
    assert lr.supports(invalid, "conv_transpose:builtin", "cpu", "float32") is None
    rec = run_check(invalid, lr, "conv_transpose:builtin", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "rejected", (rec["status"], rec["message"])
    assert "computed_input_width != SizeOfDimension" in rec["message"]
    assert rec["rejection"]["rule_named"] == "output-padding-bound"


def test_a_model_the_converter_refuses_is_a_rejection_by_the_converter(lr):
    raw = {"id": "lr-channels",
           "input": {"random": {"shape": [1, 2, 3, 3], "distribution": "integers", "low": -3, "high": 3, "seed": 1}},
           "weight": {"random": {"shape": [3, 2, 2, 2], "distribution": "integers", "low": -3, "high": 3, "seed": 2}},
           "expected": {"error": "weight C_in 3 != input C_in 2"}}
    problems: list = []
    invalid = case_from_raw(raw, "test_litert_adapter.py", "cases[0]", problems)
    assert invalid is not None and invalid.expected_error, problems
    with pytest.raises(ValueError) as info:
        x, w, b = invalid.tensors("float32")
        lr.run(invalid, "conv_transpose", "cpu", "float32", x, w, b)
    assert "Dimensions must be equal" in str(info.value)
    assert any(n.startswith("refused by: the converter") for n in info.value.__notes__)
    rec = run_check(invalid, lr, "conv_transpose", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "rejected" and rec["rejection"]["rule_named"] == "channels-mismatch", rec


def test_zero_input_on_infinite_tap_is_the_known_disagreement(lr):
    raw = {"id": "lr-zero-on-inf", "input": {"shape": [1, 1, 1, 2], "values": [0, 1]},
           "weight": {"shape": [1, 1, 1, 2], "values": [float("inf"), 1]}, "stride": [1, 2],
           "expected": {"shape": [1, 1, 1, 4]}}
    problems: list = []
    case = case_from_raw(raw, "test_litert_adapter.py", "cases[0]", problems)
    assert case is not None and not problems, problems
    for api in ("conv_transpose", "conv_transpose:builtin"):
        rec = run_check(case, lr, api, "cpu", "float32", "strict", KNOWN)
        assert rec["status"] == "xfail" and rec["known"]["id"] == "litert-zero-input-inf-weight", rec["message"]


def test_reproducer_source_makes_the_recorded_call(lr):
    case = CONFIGS[0][0]
    for api, dtype in (("conv_transpose:builtin", "float32"), ("conv_transpose:fp16_weights", "float16")):
        rec = run_check(case, lr, api, "cpu", dtype, "strict", KNOWN)
        src = lr.repro_call(rec["native_call"])
        assert src is not None and "def litert_run(" in src and "def convert(" in src
        x, w, b = case.tensors(dtype)
        scope = {"np": np, "x": x, "w": w, "b": b, "DTYPE": dtype}
        exec(compile(src, "<repro>", "exec"), scope)
        rerun = lr.run(case, api, "cpu", dtype, x, w, b)
        assert scope["native_dtype"] == "float32" and np.array_equal(scope["out"], rerun.array)
