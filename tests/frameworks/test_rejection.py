"""Rejected for the right reason (README "Invalid configurations"): on an ``expected.error`` case a
feature refusal is ``unsupported``, an exception from the adapter's own code is ``error``, and only
the framework's own refusal is ``rejected``, with the rule it named or ``internal`` (stopped, not
checked), which the report shows."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from convt_conformance.adapters import get_adapter
from convt_conformance.adapters.base import Adapter
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from convt_conformance.report.data import report_text
from convt_conformance.report.html import render_report
from tests.conftest import ROOT, framework_available

INVALID = {c.id: c for c in load_cases([CASES_DIR / "invalid"]).cases}
ZERO_STRIDE = INVALID["invalid-zero-stride"]


class _Stub(Adapter):
    """Raises what ``behaviour`` says on every call; its "framework" is the json package."""

    name, module, apis = "stub", "json", ("call",)

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour


    def run(self, case, api, device, dtype, x, w, b):
        if self.behaviour == "feature-refusal":
            raise RuntimeError("Gradients for grouped convolutions are not supported on CPU.")
        if self.behaviour == "own-keyerror":
            return {"conv_transpose": None}[f"conv_transpose{case.rank}d"]  # the adapter's own bug
        if self.behaviour == "own-raise":
            raise ValueError("stride must be positive")  # an invented validation
        if self.behaviour == "other-library":
            np.reshape(np.zeros(3), (2, 2))  # NumPy is not this adapter's framework
        json.loads("{not json")  # the framework's own refusal
        raise AssertionError("unreachable")


@pytest.fixture(autouse=True)
def _stub_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stub's rejections: "not supported on CPU" is its refusal of a valid configuration, on
    every release (as a framework's rejections.yaml `unsupported:` says)."""
    from convt_conformance.checking import check as check_mod
    from convt_conformance.checking.invalid_rules import Refusal
    from convt_conformance.loading.scope import parse_versions

    scope, _ = parse_versions({"numpy": ">=0"})
    refusal = Refusal(re.compile(r"not (yet )?supported on CPU", re.I), scope)
    real = check_mod.refusal_of

    def refusal_of(framework: str, text: str):
        if framework != "stub":
            return real(framework, text)
        return (refusal, True) if refusal.pattern.search(text) else (None, False)

    monkeypatch.setattr(check_mod, "refusal_of", refusal_of)


def _rec(behaviour: str, case=ZERO_STRIDE) -> dict:
    return run_check(case, _Stub(behaviour), "call", "cpu", "float32", "strict", [])


def test_feature_refusal_on_an_invalid_case_is_unsupported():
    rec = _rec("feature-refusal")
    assert rec["status"] == "unsupported"
    assert rec["message"].startswith("feature refusal on an invalid case: RuntimeError: Gradients for grouped")
    assert "rejection" not in rec


@pytest.mark.parametrize("behaviour, says", [
    ("own-keyerror", "KeyError"), ("own-raise", "own code"), ("other-library", "numpy")])
def test_the_adapters_own_failure_is_an_error_not_a_rejection(behaviour, says):
    rec = _rec(behaviour)
    assert rec["status"] == "error", rec["message"]
    assert rec["message"].startswith("adapter failure, not a rejection") and says in rec["message"]
    assert "test_rejection.py" in rec["message"]  # where in the adapter


def test_the_frameworks_own_refusal_is_rejected_with_the_rule_it_names():
    rec = _rec("framework")
    assert rec["status"] == "rejected" and rec["message"].startswith("JSONDecodeError")
    assert rec["rejection"] == {"rule_named": None, "expected_rules": ["nonpositive-stride"], "kind": "validation"}
    ref = run_check(ZERO_STRIDE, get_adapter("numpy"), "scatter", "cpu", "float32", "strict", [])
    assert ref["status"] == "rejected"
    assert ref["rejection"] == {"rule_named": "nonpositive-stride", "expected_rules": ["nonpositive-stride"],
                                "kind": "validation"}


def _torch_internal_record() -> dict:
    if not framework_available("torch"):
        pytest.skip("torch is not installed")
    a = get_adapter("torch")
    a.configure("strict")
    return run_check(INVALID["inv-negative-output-r2-g2-d1-b0"], a, "conv_transpose", "cpu", "float32", "strict", [])


def test_torch_grouped_negative_output_is_stopped_but_not_checked():
    """torch 2.13 CPU's grouped path (oneDNN) stops a negative output size with "could not
    construct a memory descriptor using a format tag": no validation named the rule."""
    rec = _torch_internal_record()
    assert rec["status"] == "rejected"
    assert rec["rejection"]["kind"] == "internal" and rec["rejection"]["rule_named"] is None


def test_report_shows_the_rule_named_and_stopped_not_checked():
    internal = _torch_internal_record()
    named = run_check(ZERO_STRIDE, get_adapter("numpy"), "scatter", "cpu", "float32", "strict", [])
    payload = json.loads((ROOT / "tests" / "data" / "results_sample.json").read_text())
    payload["results"] = [internal.as_dict(), named.as_dict()]
    html = report_text(render_report(payload))
    assert "internal failure, not a validation message: stopped, not checked" in html
    assert "named rule nonpositive-stride" in html


def test_tensorflow_refusing_groups_on_an_invalid_case_is_unsupported():
    if not framework_available("tensorflow"):
        pytest.skip("tensorflow is not installed")
    a = get_adapter("tensorflow")
    a.configure("strict")
    rec = run_check(INVALID["inv-zero-output-r2-g2-d1-b0"], a, "conv_transpose", "cpu", "float32", "strict", [])
    assert rec["status"] == "unsupported"
    assert rec["message"].startswith("feature refusal on an invalid case:")
    assert "grouped convolutions are not supported on CPU" in rec["message"]
