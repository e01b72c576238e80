"""The ONNX adapter (onnxruntime, onnx.reference, torch.onnx.export) against the reference.

Skips with a reason when onnx or onnxruntime is not installed. Expected padding forms are data
(tests/data/onnx/expected_forms.yaml); known runtime bugs come from known_disagreements.yaml.
"""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[onnx]')")

from convt_conformance.adapters import get_adapter
from convt_conformance.adapters.onnx import graph as onnx_graph  # noqa: E402
from convt_conformance.checking.check import run_check  # noqa: E402
from convt_conformance.library import CASES_DIR, KNOWN_FILE
from convt_conformance.loading.cases import load_cases  # noqa: E402
from convt_conformance.loading.known import load_known  # noqa: E402
from tests.conftest import DATA  # noqa: E402

PROBES = load_cases([DATA / "probes"]).cases
FORMS = load_cases([DATA / "onnx" / "cases.yaml"]).cases
EXPECTED_FORMS = yaml.safe_load((DATA / "onnx" / "expected_forms.yaml").read_text())
KNOWN, _ = load_known(KNOWN_FILE)
FAST_APIS = [a for a in get_adapter("onnx").apis if not a.startswith("torch-dynamo")]


@pytest.fixture(scope="module")
def onnx_adapter():
    a = get_adapter("onnx")
    a.configure("strict")
    return a


def _assert_good(rec: dict) -> None:
    """pass (exact: integer data), unsupported with a reason, or a known disagreement."""
    where = f"{rec['case']} {rec['api']} {rec['dtype']}"
    if rec["status"] == "unsupported":
        assert rec["message"], f"{where}: an unsupported check must say why"
        return
    if rec["status"] == "xfail":
        assert rec["known"]["reason"], f"{where}: a known disagreement needs its reason"
        return
    assert rec["status"] == "pass", f"{where}: {rec['status']}: {rec['message']}"
    assert rec["max_abs_err"] == 0.0, f"{where}: integers must be exact"
    call = rec["native_call"]
    assert call["weight_transform"].startswith("identity") and not call["weight_flip"]
    assert call["arguments"]["placed_on"] == "cpu"


def test_data_loads():
    assert len(PROBES) == 7 and len(FORMS) == len(EXPECTED_FORMS) == 6
    assert all(c.id in EXPECTED_FORMS for c in FORMS)


@pytest.mark.parametrize("api", FAST_APIS)
@pytest.mark.parametrize("case", PROBES, ids=lambda c: c.id)
def test_matches_reference_on_probes(onnx_adapter, case, api):
    passed = 0
    for dtype in ("float32", "float64"):
        rec = run_check(case, onnx_adapter, api, "cpu", dtype, "strict", KNOWN)
        _assert_good(rec)
        passed += rec["status"] == "pass"
    if api in ("ort.ConvTranspose", "torch-export.ConvTranspose{n}d") \
            and case.geometry.symmetric_padding is not None:
        assert passed, f"{api} must run the probe {case.id} in float32"


def test_dynamo_export_on_one_probe(onnx_adapter):
    from convt_conformance.adapters.onnx.export import dynamo_unavailable

    if dynamo_unavailable():
        pytest.skip(dynamo_unavailable())
    case = next(c for c in PROBES if c.id == "probe-2d")
    rec = run_check(case, onnx_adapter, "torch-dynamo.ConvTranspose{n}d", "cpu", "float32", "strict", KNOWN)
    _assert_good(rec)
    assert rec["status"] == "pass"
    graph = rec["native_call"]["arguments"]["exported_graph"]
    assert graph["nodes"].count("ConvTranspose") == 1
    assert graph["conv_transpose_attributes"]["strides"] == list(case.stride)


@pytest.mark.parametrize("case", FORMS, ids=lambda c: c.id)
def test_padding_form_mapping(case):
    want = EXPECTED_FORMS[case.id]
    mode, why = onnx_graph.auto_pad_for(case)
    assert mode == want["auto_pad"], why
    shape, why = onnx_graph.output_shape_for(case)
    assert (shape is not None) == want["output_shape"], why
    if shape is not None:
        assert tuple(shape) == case.output_shape[2:]


@pytest.mark.parametrize("case", FORMS, ids=lambda c: c.id)
@pytest.mark.parametrize("api", ["ort.ConvTranspose:auto_pad", "ort.ConvTranspose:output_shape",
                                 "ref.ConvTranspose:auto_pad", "ref.ConvTranspose:output_shape"])
def test_padding_forms_run_natively_and_match(onnx_adapter, case, api):
    """Where a form applies, the runtime resolves the attribute itself and must land on the
    case's pads; where it does not, the check is unsupported with the adapter's reason."""
    rec = run_check(case, onnx_adapter, api, "cpu", "float32", "strict", KNOWN)
    want = EXPECTED_FORMS[case.id]["auto_pad" if api.endswith("auto_pad") else "output_shape"]
    if not want:
        assert rec["status"] == "unsupported" and ("cannot express" in rec["message"]
                                                   or "derives pads" in rec["message"]), rec["message"]
        return
    _assert_good(rec)
    assert rec["status"] != "unsupported", rec["message"]
    args = rec["native_call"]["arguments"]  # the call made, whether it passed or is a known finding
    assert "pads" not in args, "the form must leave the pads to the runtime"
    assert args.get("auto_pad", args.get("output_shape")) is not None


def test_unsupported_reasons(onnx_adapter):
    probe = next(c for c in PROBES if c.id == "probe-2d")
    rec = run_check(probe, onnx_adapter, "ort.ConvTranspose", "cpu", "float64", "strict", [])
    assert rec["status"] == "unsupported"
    assert "the framework refuses it" in rec["message"] and "NOT_IMPLEMENTED" in rec["message"]
    rec = run_check(probe, onnx_adapter, f"ort.ConvTranspose@opset{onnx_graph.OLD_OPSET}", "cpu", "bfloat16",
                    "strict", [])
    assert rec["status"] == "unsupported" and "has no bfloat16" in rec["message"]
    rec = run_check(probe, onnx_adapter, "torch-export.ConvTranspose{n}d", "cpu", "float16", "strict", [])
    assert rec["status"] == "unsupported" and "float32" in rec["message"]
    unequal = next(c for c in PROBES if c.id == "probe-2d-unequal-pads")
    rec = run_check(unequal, onnx_adapter, "torch-export.ConvTranspose{n}d", "cpu", "float32", "strict", [])
    assert rec["status"] == "unsupported" and "unequal" in rec["message"]
    rec = run_check(probe, onnx_adapter, "ref.ConvTranspose", "gpu", "float32", "strict", [])
    assert rec["status"] == "unsupported" and "CPU only" in rec["message"]


def test_invalid_case_rejected_by_onnxruntime(onnx_adapter):
    invalid = {c.id: c for c in load_cases([CASES_DIR / "invalid"]).cases}
    rec = run_check(invalid["invalid-weight-cin-mismatch"], onnx_adapter, "ort.ConvTranspose", "cpu",
                    "float32", "strict", [])
    assert rec["status"] == "rejected", rec["message"]
    assert rec["message"].startswith("RuntimeError: onnxruntime refused it")
    assert "onnx.checker" in rec["message"]  # which component refused is on record


def test_opsets_resolved():
    assert onnx_graph.latest_ort_opset() <= onnx_graph.latest_onnx_opset()
    assert onnx_graph.latest_ort_opset() > onnx_graph.OLD_OPSET
    assert "bfloat16" not in onnx_graph.schema_types(onnx_graph.OLD_OPSET)
