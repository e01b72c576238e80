"""Literal vectors of other runtimes' own tests, in ``tests/data/outside/``: OpenVINO's
``op_reference`` tests (ConvolutionBackpropData, GroupConvolutionBackpropData) and ONNX-frontend
tests, TensorFlow Lite's ``transpose_conv_test.cc`` and ``conv3d_transpose_test.cc``. Each case is
translated into the suite's canonical convention (docs/case-format.md: input ``(N, C_in, *S)``,
weight ``(C_in, C_out/groups, *K)`` without a flip, padding ``(begin, end)`` cut from the full
scatter, output_padding at the far end); the file headers and each case's comment say how, and
which upstream file, test and commit the values come from.

1. the files validate and every case names its source;
2. the NumPy reference (float64 on the float32-rounded inputs) reproduces every literal expected
   value within the derived float32 tolerance (docs/oracle-and-tolerance.md), and, for the
   OpenVINO vectors whose output_padding this suite counts as invalid (not below
   max(stride, dilation)), OpenVINO's literal output equals the reference cropped by
   ``pads_end - output_padding``, the definition extended;
3. every installed framework's forward columns (the registry at run time, so a framework added
   later joins by itself) pass each case, reject its invalid ones, are ``unsupported`` with a
   reason, or match a known disagreement of ``known_disagreements.yaml``."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convt_conformance
from convt_conformance.adapters import adapter_names, get_adapter
from convt_conformance.adapters.registry import adapter_class
from convt_conformance.checking.check import memo_inputs, reference_and_magnitude, run_check
from convt_conformance.checking.tolerance import derived_tolerance, terms_per_output
from convt_conformance.library import KNOWN_FILE
from convt_conformance.loading.cases import load_cases
from convt_conformance.loading.known import load_known
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.model.case import Case
from convt_conformance.model.status import Status
from convt_conformance.oracle.forward import conv_transpose_scatter
from tests.conftest import DATA, ROOT

OUTSIDE = DATA / "outside"
PACKAGE_ROOT = Path(convt_conformance.__file__).resolve().parents[1]  # what this process imports
FILES = ("openvino_reference_tests.yaml", "tflite_kernel_tests.yaml")
LOADED = load_cases([OUTSIDE])
CASES: list[Case] = LOADED.cases
VALUED = [c for c in CASES if c.expected_values is not None]
KNOWN = load_known(KNOWN_FILE)[0]

# OpenVINO's expected outputs of its vectors with output_padding = 1 at stride 1, dilation 1 (invalid
# here, rule output-padding-bound; OpenVINO computes them: openvino-accepted-invalid-outpad), copied
# from the same upstream tests as the case files' comments give them (flat, NCHW order)
OPENVINO_ABOVE_BOUND: dict[str, list[float]] = {
    "ov-ref-1d-pads-outpad": [12, 19, 10, 7, 2],
    "ov-ref-2d-pads-outpad": [23, 35, 18, 23, 19, 8, 29, 17, 5],
    "ov-ref-3d-pads-outpad": [116, 166, 81, 89, 93, 32, 86, 91, 54, 116, 166, 81, 89, 93, 32, 86, 91, 54,
                              49, 80, 51, 47, 50, 26, 45, 39, 34],
}


def test_files_validate_and_name_their_sources() -> None:
    assert LOADED.problems == [], [str(p) for p in LOADED.problems]
    assert sorted(p.name for p in OUTSIDE.glob("*.yaml")) == sorted(FILES)
    assert len(VALUED) >= 10
    by_file = {name: [c for c in CASES if c.file.endswith(name)] for name in FILES}
    assert all(by_file.values()), {k: len(v) for k, v in by_file.items()}
    for c in CASES:
        assert "outside" in c.tags, c.id
        repo = "openvinotoolkit/openvino" if c.file.endswith(FILES[0]) else "tensorflow/tensorflow"
        assert c.source and c.source.startswith(repo) and " @ " in c.source, (c.id, c.source)
    # the invalid ones are exactly OpenVINO's output_padding vectors, for that rule alone
    invalid = {c.id: c.invalid_reasons for c in CASES if c.expected_error}
    assert set(invalid) == set(OPENVINO_ABOVE_BOUND)
    for reasons in invalid.values():
        assert reasons and all("output_padding" in r for r in reasons), reasons


def _tolerance(case: Case, reference: np.ndarray, magnitude: np.ndarray, has_bias: bool) -> np.ndarray:
    """The float32 per-element tolerance a framework's check of ``case`` gets on the CPU (strict)."""
    n = terms_per_output(case.in_channels, case.groups, case.geometry.kernel) + has_bias
    tol, _ = derived_tolerance(magnitude, reference, dtype="float32", n_terms=n, device="cpu", precision="strict",
                               override=case.tolerance, bias_added=has_bias)
    return tol


@pytest.mark.parametrize("case", VALUED, ids=lambda c: c.id)
def test_reference_reproduces_the_literal_values(case: Case) -> None:
    """Reference convention: the scatter definition, float64, on inputs rounded to float32."""
    assert case.expected_values is not None
    x, w, b = memo_inputs(case, "float32")
    reference, magnitude = reference_and_magnitude(case, x, w, b)
    expected = np.asarray(case.expected_values, dtype=np.float64)
    assert reference.shape == expected.shape
    tol = _tolerance(case, reference, magnitude, b is not None)
    err = np.abs(reference - expected)
    worst = np.unravel_index(int(np.argmax(err - tol)), err.shape)
    assert np.all(err <= tol), (f"{case.id}: reference {reference[worst]} vs literal {expected[worst]} at {worst}, "
                                f"tolerance {tol[worst]:.3g}")


@pytest.mark.parametrize("case_id", sorted(OPENVINO_ABOVE_BOUND))
def test_openvino_output_padding_vectors_are_the_definition_extended(case_id: str) -> None:
    """OpenVINO's pads_end e with output_padding op (op >= max(stride, dilation)) keeps op more
    elements of the full scatter at the far end: the reference with the end crop e - op."""
    case = next(c for c in CASES if c.id == case_id)
    spec = case.spec
    crop = tuple((lo, hi - op) for (lo, hi), op in zip(spec.padding, spec.output_padding))
    assert all(hi >= 0 for _, hi in crop)
    x, w, b = memo_inputs(case, "float64")
    got = conv_transpose_scatter(x, w, b, stride=spec.stride, padding=crop, output_padding=[0] * case.rank,
                                 dilation=spec.dilation, groups=spec.groups)
    assert got.reshape(-1).tolist() == OPENVINO_ABOVE_BOUND[case_id]


def framework_records(name: str) -> list[dict[str, Any]]:
    """Every forward column of ``name`` on every outside case, in the case's dtypes, on the CPU,
    through the suite's own check (:func:`run_check`: literal values as the oracle, derived
    tolerance, known disagreements applied), as plain records. Runs in a child process per
    framework (:func:`_child_records`): runtimes loaded into one process can crash each other, and
    a framework that crashes on a vector is then one failed test, not a lost test run."""
    adapter = get_adapter(name)
    why = adapter.unavailable_reason()
    if why:
        return [{"unavailable": why}]
    adapter.configure("strict")
    out: list[dict[str, Any]] = []
    for case in CASES:
        for api in adapter.apis:
            if gradient_quantity(api) or not adapter.applies(case, api):
                continue
            for dtype in case.dtypes:
                rec = run_check(case, adapter, api, "cpu", dtype, "strict", KNOWN)
                out.append({"case": case.id, "api": rec.api, "dtype": dtype, "status": rec.status.value,
                            "message": rec.message or "", "known": (rec.known or {}).get("id"),
                            "reason": (rec.known or {}).get("reason")})
    close = getattr(adapter, "close", None)
    if close:
        close()
    return out


_CHILD = ("import json, sys\n"
          "from tests.frameworks.test_outside_vectors import framework_records\n"
          "print('\\n@@records@@' + json.dumps(framework_records(sys.argv[1])))\n")


@functools.cache
def _child_records(name: str) -> tuple[int, str, list[dict[str, Any]]]:
    """(exit status, output tail, records) of :func:`framework_records` run in a child process with
    the adapter's own process environment."""
    env = {**os.environ, **adapter_class(name).process_environment()}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _CHILD, name], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    head, sep, tail = proc.stdout.rpartition("\n@@records@@")
    records = json.loads(tail) if sep and proc.returncode == 0 else []
    return proc.returncode, (head + proc.stderr)[-3000:], records


#: checks whose outcome the suite's verdict calls unexpected on these vectors although nothing is
#: wrong with the framework's answer: (framework, case, api label) -> why
EXPECTED_XPASS: dict[tuple[str, str, str], str] = {
    ("openvino", "tflite-3d-asymmetric-same", "ConvolutionBackpropData:output_shape"):
        "openvino-output-shape-explicit-pads (strict) shifts the crop by total // 2; with an all-ones kernel "
        "and a 1x1x1 output every crop position holds the same value, so the shift cannot show",
}


@pytest.mark.parametrize("name", adapter_names())
def test_framework_columns_on_outside_vectors(name: str) -> None:
    """Each forward check passes, rejects an invalid case, is ``unsupported`` with a reason, or is a
    known disagreement (``xfail`` with its entry's reason)."""
    if not adapter_class(name)().installed():  # find_spec only: no framework is imported here
        pytest.skip(f"{name} is not installed")
    code, output, records = _child_records(name)
    assert code == 0, f"{name}: the child running the checks exited with {code}:\n{output}"
    if records and "unavailable" in records[0]:
        pytest.skip(records[0]["unavailable"])
    assert {r["case"] for r in records} <= {c.id for c in CASES}
    bad = []
    for r in records:
        status = Status(r["status"])
        if status is Status.UNSUPPORTED:
            assert r["message"], f"{name}.{r['api']} on {r['case']}: an unsupported check must say why"
        elif status is Status.XFAIL:
            assert r["known"] and r["reason"], r
        elif status is Status.XPASS and (name, r["case"], r["api"]) in EXPECTED_XPASS:
            continue
        elif status not in (Status.PASS, Status.REJECTED):
            bad.append(f"{r['case']} {name}.{r['api']} {r['dtype']}: {status.value}: {r['message'][:400]}")
    assert not bad, "\n".join(bad)
    if name == "numpy":  # the reference's own columns always run
        assert any(r["status"] == "pass" for r in records)
