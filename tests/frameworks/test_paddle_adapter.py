"""The PaddlePaddle adapter (paddle.nn.functional.conv{1,2,3}d_transpose and
paddle.nn.Conv{1,2,3}DTranspose on the CPU) against the reference.

Skips with a reason when paddle is not installed. Known Paddle bugs come from
known_disagreements.yaml.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

# find_spec, not importorskip: a bare `import paddle` after TensorFlow (another test module's
# import) segfaults; the adapter imports it (load_paddle) the way that works
if importlib.util.find_spec("paddle") is None:
    pytest.skip("paddle is not installed (pip install -e '.[paddle]')", allow_module_level=True)

from convt_conformance.adapters.paddle import padding as pd_padding  # noqa: E402
from convt_conformance.checking.check import run_check  # noqa: E402
from convt_conformance.library import KNOWN_FILE  # noqa: E402
from convt_conformance.loading.cases import load_cases  # noqa: E402
from convt_conformance.loading.known import load_known  # noqa: E402
from convt_conformance.model.apis import gradient_quantity  # noqa: E402
from tests.conftest import DATA, integer_case  # noqa: E402

PROBES = {c.id: c for c in load_cases([DATA / "probes"]).cases}
KNOWN, _ = load_known(KNOWN_FILE)
FORWARD = ("conv_transpose", "conv_transpose:channels_last", "ConvTranspose", "ConvTranspose:channels_last",
           "conv_transpose:output_size")


@pytest.fixture(scope="module")
def pd(shared_adapter):
    return shared_adapter("paddle")


def _case(**keys):
    """A case from a mapping (integer data: exact in float32 and float64)."""
    return integer_case("test_paddle_adapter.py", ["float32", "float64"], **keys)


CONFIGS = [
    _case(id="pd-asym-pads-outpad", stride=[2, 3], padding=[[1, 0], [0, 2]], output_padding=[1, 2],
          expected_shape=[1, 3, 6, 12]),
    _case(id="pd-dilated", stride=2, dilation=[2, 1], padding=[[1, 1], [0, 0]], output_padding=[0, 1],
          expected_shape=[1, 3, 5, 10]),
    _case(id="pd-groups-bias", ci=4, co=6, groups=2, stride=[1, 2], padding=[1, 0],
          bias={"values": [1, -2, 3, 0, 2, -1]}, expected_shape=[1, 6, 2, 9]),
    _case(id="pd-3d-depthwise", ci=2, co=2, groups=2, spatial=[2, 3, 2], kernel=[2, 1, 2], stride=[2, 1, 3],
          expected_shape=[1, 2, 4, 3, 5]),
    _case(id="pd-1d", spatial=[5], kernel=[4], stride=2, padding=[[2, 1]], bias={"values": [1, 0, -1]},
          expected_shape=[1, 3, 9]),
]


@pytest.mark.parametrize("case", CONFIGS, ids=[c.id for c in CONFIGS])
@pytest.mark.parametrize("api", FORWARD)
def test_explicit_configurations_match_the_reference(pd, case, api):
    for dtype in case.dtypes:
        rec = run_check(case, pd, api, "cpu", dtype, "strict", KNOWN)
        assert rec["status"] == "pass", (api, dtype, rec["status"], rec["message"])
        assert rec["max_abs_err"] == 0.0 and rec["native_dtype"] == dtype
        call = rec["native_call"]
        assert "cpu" in call["arguments"]["placed_on"].lower() and not call["weight_flip"]
        assert call["arguments"]["data_format"].endswith("C") == api.endswith(":channels_last")


@pytest.mark.parametrize("case", CONFIGS[:3] + CONFIGS[4:], ids=[c.id for c in CONFIGS[:3] + CONFIGS[4:]])
@pytest.mark.parametrize("api", [a for a in ("conv_transpose", "ConvTranspose")])
def test_gradients_through_paddle_grad_match_the_reference(pd, case, api):
    for q in ("grad_input", "grad_weight", "grad_bias"):
        if q == "grad_bias" and case.bias is None:
            continue
        rec = run_check(case, pd, f"{api}:{q}", "cpu", "float64", "strict", KNOWN)
        assert rec["status"] == "pass", (q, rec["status"], rec["message"])
        assert rec["native_call"]["arguments"]["method"] == "paddle.grad"


def test_padding_mapping_ints_for_symmetric_pairs_else_pairs_in_the_data_format():
    sym, asym = CONFIGS[1], CONFIGS[0]
    assert pd_padding.explicit_padding(sym, False)[0] == [1, 0]
    assert pd_padding.explicit_padding(asym, False)[0] == [[0, 0], [0, 0], [1, 0], [0, 2]]
    assert pd_padding.explicit_padding(asym, True)[0] == [[0, 0], [1, 0], [0, 2], [0, 0]]


def test_padding_algorithm_passes_the_case_word_or_valid_for_zero_pads():
    valid = _case(id="pd-word-valid", spatial=[3], kernel=[2], stride=2, padding="valid", expected_shape=[1, 3, 6])
    same = _case(id="pd-word-same", spatial=[4], kernel=[3], stride=2, padding="same", expected_shape=[1, 3, 8])
    lower = _case(id="pd-word-lower", spatial=[4], kernel=[3], stride=2, padding="same_lower",
                  expected_shape=[1, 3, 8])
    assert pd_padding.padding_algorithm_for(valid)[0] == "VALID"
    assert pd_padding.padding_algorithm_for(same)[0] == "SAME"
    word, why = pd_padding.padding_algorithm_for(lower)
    assert word is None and "same_lower" in why
    assert pd_padding.padding_algorithm_for(CONFIGS[0])[0] is None
    assert pd_padding.paddle_same_pads(5, 3, 2) == (1, 1)  # output 9, not 5 * 2


def test_same_with_stride_is_the_known_disagreement(pd):
    """in 5, kernel 3, stride 2: the format's 'same' is 10 long, Paddle's 'SAME' 9."""
    case = _case(id="pd-same-s2", spatial=[5], kernel=[3], stride=2, padding="same", expected_shape=[1, 3, 10])
    rec = run_check(case, pd, "conv_transpose:padding_algorithm", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "xfail" and rec["known"]["id"] == "paddle-same-padding-algorithm", rec["message"]
    assert rec["native_call"]["arguments"]["padding"] == "SAME"


def test_output_padding_at_the_stride_below_the_dilation_is_the_known_disagreement(pd):
    case = _case(id="pd-outpad-dil", spatial=[5], kernel=[3], stride=1, dilation=2, output_padding=1,
                 expected_shape=[1, 3, 10])
    rec = run_check(case, pd, "conv_transpose", "cpu", "float64", "strict", KNOWN)
    assert rec["status"] == "xfail" and rec["known"]["id"] == "paddle-outpad-ge-stride-error", rec["message"]
    assert "are inconsistent" in rec["message"]
    rec = run_check(case, pd, "conv_transpose:output_size", "cpu", "float64", "strict", KNOWN)
    assert rec["status"] == "unsupported" and "less than inferred size + stride" in rec["message"]


@pytest.mark.parametrize("api", FORWARD + ("conv_transpose:grad_input",))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16bit_dtypes_are_unsupported_in_paddles_words(pd, api, dtype):
    rec = run_check(PROBES["probe-2d"], pd, api, "cpu", dtype, "strict", KNOWN)
    assert rec["status"] == "unsupported", (rec["status"], rec["message"])
    assert f"Selected wrong DataType `{dtype}`" in rec["message"] and "is not registered" in rec["message"]


@pytest.mark.parametrize("case_id, words", [
    ("invalid-zero-stride", "should be larger than 0"),
    ("invalid-groups-indivisible", "must be divisible by groups"),
    ("invalid-negative-padding", "Invalid padding"),
    ("invalid-output-padding-ge-both", "should be less than either stride or dilation"),
])
def test_invalid_configurations_are_rejected_for_the_right_reason(pd, case_id, words):
    from convt_conformance.library import CASES_DIR

    cases = {c.id: c for c in load_cases([CASES_DIR / "invalid"]).cases}
    if case_id not in cases:
        pytest.skip(f"{case_id} is not in the library")
    rec = run_check(cases[case_id], pd, "conv_transpose", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "rejected", (rec["status"], rec["message"])
    assert words in rec["message"], rec["message"]


def test_probes_declare_what_paddle_does(pd):
    from convt_conformance.checking.probes import discover_conventions

    rows = discover_conventions(["paddle"])
    assert {r["api"] for r in rows} == {"paddle.conv2d_transpose", "paddle.conv2d_transpose:channels_last"}
    assert all(r["agrees"] for r in rows), rows


def test_labels_name_paddles_functions_and_layers(pd):
    assert pd.api_label("conv_transpose", 3) == "conv3d_transpose"
    assert pd.api_label("ConvTranspose:channels_last", 1) == "Conv1DTranspose:channels_last"
    assert pd.api_label("ConvTranspose:grad_weight", 2) == "Conv2DTranspose:grad_weight"
    assert pd.api_label("conv_transpose:output_size", 2) == "conv2d_transpose:output_size"
    assert all(gradient_quantity(a) is None or a.split(":")[0] in ("conv_transpose", "ConvTranspose")
               for a in pd.apis)


@pytest.mark.parametrize("api", ["conv_transpose:channels_last", "ConvTranspose"])
def test_reproducer_source_makes_the_recorded_call(pd, api):
    case = CONFIGS[2]
    rec = run_check(case, pd, api, "cpu", "float32", "strict", KNOWN)
    src = pd.repro_call(rec["native_call"])
    assert src is not None and "import paddle" in src
    x, w, b = case.tensors("float32")
    scope = {"np": np, "x": x, "w": w, "b": b, "DTYPE": "float32"}
    exec(compile(src, "<repro>", "exec"), scope)
    rerun = pd.run(case, api, "cpu", "float32", x, w, b)
    assert scope["native_dtype"] == "float32" and np.array_equal(scope["out"], rerun.array)


def test_gradient_reproducer_source_differentiates_the_recorded_call(pd):
    case = CONFIGS[2]
    g = np.ones(case.output_shape)
    rec = run_check(case, pd, "ConvTranspose:grad_weight", "cpu", "float64", "strict", KNOWN)
    src = pd.repro_gradient_call(rec["native_call"], "grad_weight")
    assert src is not None and "paddle.grad" in src
    x, w, b = case.tensors("float64")
    scope = {"np": np, "x": x, "w": w, "b": b, "G": g, "DTYPE": "float64"}
    exec(compile(src, "<repro>", "exec"), scope)
    rerun = pd.run(case, "ConvTranspose:grad_weight", "cpu", "float64", x, w, b, g)
    assert np.array_equal(scope["out"], rerun.array)
