"""The OpenVINO adapter (ConvolutionBackpropData / GroupConvolutionBackpropData on the CPU plugin)
against the reference.

Skips with a reason when openvino is not installed. Known OpenVINO bugs come from
known_disagreements.yaml.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed (pip install -e '.[openvino]')")

from convt_conformance.adapters.openvino import padding as ov_padding  # noqa: E402
from convt_conformance.checking.check import run_check  # noqa: E402
from convt_conformance.library import KNOWN_FILE  # noqa: E402
from convt_conformance.loading.cases import load_cases  # noqa: E402
from convt_conformance.loading.known import load_known  # noqa: E402
from tests.conftest import DATA, integer_case  # noqa: E402

PROBES = {c.id: c for c in load_cases([DATA / "probes"]).cases}
KNOWN, _ = load_known(KNOWN_FILE)


@pytest.fixture(scope="module")
def ov(shared_adapter):
    return shared_adapter("openvino")


def _case(**keys):
    """A case from a mapping (integer data: exact in every dtype)."""
    return integer_case("test_openvino_adapter.py", ["float32", "float16", "bfloat16"], **keys)


# explicit configurations: (case, the column that must pass it exactly in every dtype)
CONFIGS = [
    (_case(id="ov-pads-outpad", stride=[2, 3], padding=[[1, 0], [0, 2]], output_padding=[1, 2],
           expected_shape=[1, 3, 6, 12]), "ConvolutionBackpropData"),
    (_case(id="ov-dilated", stride=2, dilation=[2, 1], padding=[[1, 2], [0, 1]], output_padding=[0, 1],
           expected_shape=[1, 3, 4, 9]), "ConvolutionBackpropData"),
    (_case(id="ov-groups-bias", ci=4, co=6, groups=2, stride=[1, 2], padding=[1, 0], bias={"values": [1, -2, 3, 0, 2, -1]},
           expected_shape=[1, 6, 2, 9]), "GroupConvolutionBackpropData"),
    (_case(id="ov-3d-depthwise", ci=2, co=2, groups=2, spatial=[2, 3, 2], kernel=[2, 1, 2], stride=[2, 1, 3],
           expected_shape=[1, 2, 4, 3, 5]), "GroupConvolutionBackpropData"),
    (_case(id="ov-1d-same-lower-output-shape", spatial=[5], kernel=[4], stride=2, padding=[[2, 1]],
           expected_shape=[1, 3, 9]), "ConvolutionBackpropData:output_shape"),
    (_case(id="ov-valid-auto-pad", spatial=[3, 3], kernel=[2, 2], stride=2, output_padding=1,
           expected_shape=[1, 3, 7, 7]), "ConvolutionBackpropData:auto_pad"),
]


@pytest.mark.parametrize("case, api", CONFIGS, ids=[c.id for c, _ in CONFIGS])
def test_explicit_configurations_match_the_reference(ov, case, api):
    for dtype in case.dtypes:
        rec = run_check(case, ov, api, "cpu", dtype, "strict", KNOWN)
        assert rec["status"] == "pass", (dtype, rec["status"], rec["message"])
        assert rec["max_abs_err"] == 0.0 and rec["native_dtype"] == dtype
        call = rec["native_call"]
        assert call["precision"]["INFERENCE_PRECISION_HINT"] == {"float32": "f32", "float16": "f16",
                                                                  "bfloat16": "bf16"}[dtype]
        assert call["arguments"]["placed_on"] == ["CPU"] and not call["weight_flip"]


def test_output_shape_picks_the_auto_pad_whose_rule_gives_the_pads():
    """The specification's rule: larger half at the end unless SAME_UPPER (at the begin)."""
    end = _case(id="ov-rule-end", spatial=[5], kernel=[4], stride=2, padding=[[1, 2]], expected_shape=[1, 3, 9])
    begin = _case(id="ov-rule-begin", spatial=[5], kernel=[4], stride=2, padding=[[2, 1]], expected_shape=[1, 3, 9])
    wide = _case(id="ov-rule-none", spatial=[5], kernel=[4], stride=2, padding=[[3, 0]], expected_shape=[1, 3, 9])
    assert ov_padding.output_shape_for(end)[:2] == ("explicit", [9])
    assert ov_padding.output_shape_for(begin)[:2] == ("same_upper", [9])
    mode, shape, why = ov_padding.output_shape_for(wide)
    assert (mode, shape) == (None, None) and "cannot carry pads [[3, 0]]" in why


def test_output_shape_with_explicit_auto_pad_is_the_known_disagreement(ov):
    """pads (1, 2): the spec's explicit rule derives them from output_shape, OpenVINO cuts (0, 3)."""
    case = _case(id="ov-explicit-output-shape", spatial=[5], kernel=[4], stride=2, padding=[[1, 2]],
                 expected_shape=[1, 3, 9])
    rec = run_check(case, ov, "ConvolutionBackpropData:output_shape", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "xfail" and rec["underlying_status"] == "fail", (rec["status"], rec["message"])
    assert rec["known"]["id"] == "openvino-output-shape-explicit-pads"
    assert rec["native_call"]["arguments"]["auto_pad"] == "explicit"


def test_grouped_op_with_one_group_is_the_known_disagreement(ov):
    rec = run_check(PROBES["probe-2d"], ov, "GroupConvolutionBackpropData", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "xfail" and rec["known"]["id"] == "openvino-group1-error", rec["message"]
    assert "could not create a primitive descriptor" in rec["message"]


def test_weight_slip_cannot_pass(ov, monkeypatch):
    """A flipped kernel or one with H and W swapped, fed through each column, fails on the
    asymmetric probes (every forward column is tried on the first probe it passes)."""
    clean_run = ov.run
    slips = {"spatial-flip": lambda w: w[..., ::-1, ::-1].copy(),
             "h-w-swap": lambda w: np.ascontiguousarray(np.swapaxes(w, 2, 3))}
    caught = []
    for api in (a for a in ov.apis if ":grad_" not in a):
        probe = next((p for p in ("probe-2d-dilated", "probe-2d-groups", "probe-3d-groups", "probe-3d")
                      if run_check(PROBES[p], ov, api, "cpu", "float32", "strict", [])["status"] == "pass"), None)
        if probe is None:
            continue
        for slip, transform in slips.items():
            monkeypatch.setattr(ov, "run", lambda case, api, device, dtype, x, w, b, t=transform, **kw:
                                clean_run(case, api, device, dtype, x, t(w), b, **kw))
            rec = run_check(PROBES[probe], ov, api, "cpu", "float32", "strict", [])
            monkeypatch.setattr(ov, "run", clean_run)
            assert rec["status"] in ("fail", "error"), (api, probe, slip, rec["status"], rec["message"])
            caught.append((api, slip))
    assert {a for a, _ in caught} >= {"ConvolutionBackpropData", "GroupConvolutionBackpropData",
                                      "ConvolutionBackpropData:auto_pad"}, caught


@pytest.mark.parametrize("api, case_id, dtype, words", [
    ("ConvolutionBackpropData", "probe-2d", "float64", "Wrong value f64 for property key INFERENCE_PRECISION_HINT"),
    ("ConvolutionBackpropData", "probe-2d-groups", "float32", "ConvolutionBackpropData has no groups"),
    ("ConvolutionBackpropData:auto_pad", "probe-2d", "float32", "sets every pad to 0"),
    ("ConvolutionBackpropData:output_shape", "probe-2d-unequal-pads", "float32", "cannot carry pads"),
    ("ConvolutionBackpropData:grad_input", "probe-2d", "float32", "OpenVINO has no automatic differentiation"),
])
def test_refusals_are_unsupported_with_openvinos_reason(ov, api, case_id, dtype, words):
    rec = run_check(PROBES[case_id], ov, api, "cpu", dtype, "strict", KNOWN)
    assert rec["status"] == "unsupported", (rec["status"], rec["message"])
    assert words in rec["message"], rec["message"]


def test_reproducer_source_makes_the_recorded_call(ov):
    case = CONFIGS[2][0]
    rec = run_check(case, ov, "GroupConvolutionBackpropData", "cpu", "bfloat16", "strict", KNOWN)
    src = ov.repro_call(rec["native_call"])
    assert src is not None and "def backprop_data_run(" in src and "op='GroupConvolutionBackpropData'" in src
    x, w, b = case.tensors("bfloat16")
    scope = {"np": np, "x": x, "w": w, "b": b, "DTYPE": "bfloat16"}
    exec(compile(src, "<repro>", "exec"), scope)
    rerun = ov.run(case, "GroupConvolutionBackpropData", "cpu", "bfloat16", x, w, b)
    assert scope["native_dtype"] == "bfloat16" and np.array_equal(scope["out"], rerun.array)
