"""Known disagreements scoped to releases, outcomes and configurations: an entry applies only where
all three match, anything else on a check it names is unexpected with a message saying why, and
someone else's cases get the entry by their configuration."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from convt_conformance.checking.check import apply_known
from convt_conformance.loading.cases import load_file
from convt_conformance.loading.known import load_known, match_known
from convt_conformance.model.record import CheckRecord
from convt_conformance.model.status import FailureKind, Status

ENTRY = """
disagreements:
  - id: fw-groups-refusal
    adapter: fw
    where: ["groups > 1"]
    versions: {fw-dist: ">=1.20,<1.32"}
    outcome: error
    reason: fw refuses grouped transposed convolutions
"""

CASES = """
cases:
  - id: theirs-grouped
    input: {shape: [1, 4, 3, 3], random: {shape: [1, 4, 3, 3], distribution: uniform, seed: 1}}
    weight: {shape: [4, 1, 2, 2], random: {shape: [4, 1, 2, 2], distribution: uniform, seed: 2}}
    groups: 2
    expected: {shape: [1, 2, 4, 4]}
  - id: theirs-plain
    input: {shape: [1, 2, 3, 3], random: {shape: [1, 2, 3, 3], distribution: uniform, seed: 1}}
    weight: {shape: [2, 1, 2, 2], random: {shape: [2, 1, 2, 2], distribution: uniform, seed: 2}}
    expected: {shape: [1, 1, 4, 4]}
"""


def _setup(tmp_path: Path, entry: str = ENTRY):
    (tmp_path / "known.yaml").write_text(entry)
    (tmp_path / "cases.yaml").write_text(CASES)
    known, problems = load_known(tmp_path / "known.yaml")
    assert problems == []
    loaded = load_file(tmp_path / "cases.yaml")
    assert loaded.problems == []
    return known, {c.id: c for c in loaded.cases}


def _record(case, status: Status, kind: FailureKind | None = None, message: str = "boom") -> CheckRecord:
    rec = CheckRecord.for_case(case, adapter="fw", api="conv", device="cpu", dtype="float32", precision="strict",
                               framework_version="1.25.0")
    rec.status, rec.failure_kind, rec.message = status, kind, message
    return rec


def test_outside_cases_get_the_entry_by_their_configuration(tmp_path, monkeypatch):
    known, cases = _setup(tmp_path)
    monkeypatch.setattr("convt_conformance.loading.scope.installed_version", lambda d: "1.25.0")
    grouped = _record(cases["theirs-grouped"], Status.ERROR)
    apply_known(grouped, known, cases["theirs-grouped"])
    assert grouped.status is Status.XFAIL and grouped.known["id"] == "fw-groups-refusal"
    plain = _record(cases["theirs-plain"], Status.ERROR)
    apply_known(plain, known, cases["theirs-plain"])
    assert plain.status is Status.ERROR and plain.known is None  # matches no configuration: unexpected


def test_another_outcome_on_a_named_check_is_unexpected_and_says_why(tmp_path, monkeypatch):
    known, cases = _setup(tmp_path)
    monkeypatch.setattr("convt_conformance.loading.scope.installed_version", lambda d: "1.25.0")
    rec = _record(cases["theirs-grouped"], Status.FAIL, FailureKind.VALUE, "values differ")
    apply_known(rec, known, cases["theirs-grouped"])
    assert rec.status is Status.FAIL
    assert rec.message.startswith("known disagreement fw-groups-refusal expects error on fw-dist <1.32,>=1.20; "
                                  "got fail/value on fw-dist 1.25.0")
    assert rec.message.endswith("values differ")


def test_another_release_is_unexpected_and_says_why(tmp_path, monkeypatch):
    known, cases = _setup(tmp_path)
    monkeypatch.setattr("convt_conformance.loading.scope.installed_version", lambda d: "1.33.0")
    rec = _record(cases["theirs-grouped"], Status.ERROR)
    apply_known(rec, known, cases["theirs-grouped"])
    assert rec.status is Status.ERROR
    assert "expects error on fw-dist <1.32,>=1.20; got error on fw-dist 1.33.0" in rec.message
    # a release the entry does not cover that computes correctly is a plain pass, not an xpass
    ok = _record(cases["theirs-grouped"], Status.PASS)
    apply_known(ok, known, cases["theirs-grouped"])
    assert ok.status is Status.PASS


def test_a_fixed_check_in_scope_is_xpass_whatever_outcome_the_entry_expects(tmp_path, monkeypatch):
    known, cases = _setup(tmp_path)
    monkeypatch.setattr("convt_conformance.loading.scope.installed_version", lambda d: "1.30.0")
    rec = _record(cases["theirs-grouped"], Status.PASS)
    apply_known(rec, known, cases["theirs-grouped"])
    assert rec.status is Status.XPASS and rec.underlying_status is Status.PASS


def test_match_known_reports_the_near_entry(tmp_path, monkeypatch):
    known, cases = _setup(tmp_path)
    monkeypatch.setattr("convt_conformance.loading.scope.installed_version", lambda d: "1.25.0")
    rec = _record(cases["theirs-grouped"], Status.CRASH, FailureKind.CRASH)
    m = match_known(known, rec.check, "strict", cases["theirs-grouped"], "crash", False)
    assert m.entry is None and m.near is not None and m.near.id == "fw-groups-refusal"


BAD = """
disagreements:
  - id: a
    case: "edge-*"
    versions: {fw: "==1.0"}
    outcome: fail/value
    reason: r
  - id: b
    versions: {fw: "1.0"}
    outcome: fail/valeu
    where: ["strides > 1"]
    reason: r
  - id: c
    outcome: error
    reason: r
  - id: a
    versions: {fw: "==1.0"}
    outcome: error
    reason: r
"""


def test_every_problem_of_an_entry_is_located(tmp_path):
    (tmp_path / "k.yaml").write_text(BAD)
    known, problems = load_known(tmp_path / "k.yaml")
    text = "\n".join(problems)
    assert "disagreements[0] (a): case: 'edge-*' is a glob" in text
    assert "disagreements[1] (b): versions: fw: Invalid specifier" in text
    assert "disagreements[1] (b): outcome: unknown outcome 'fail/valeu'" in text
    assert "disagreements[1] (b): where: 'strides > 1': unknown quantity 'strides'" in text
    assert "disagreements[2] (c): `versions` is required" in text
    assert "disagreements[3] (a): id: 'a' is also disagreements[0]'s" not in text  # entry 0 was refused
    assert [e.id for e in known] == ["a"]


def test_the_packaged_file_scopes_every_entry():
    from convt_conformance.library import KNOWN_FILE

    known, problems = load_known(KNOWN_FILE)
    assert problems == [] and len(known) >= 90
    assert all(e.versions.specs and e.outcomes for e in known)
    assert len({e.id for e in known}) == len(known)
    assert np.all([e.case == "*" or not any(ch in e.case for ch in "*?[") for e in known])


def test_a_refusal_outside_its_releases_is_an_error(tmp_path, monkeypatch):
    """A framework's `unsupported` refusal pattern holds on the releases it was seen on; the same
    refusal on another release is a valid configuration refused: an error that says so."""
    from convt_conformance.checking import check as check_mod
    from convt_conformance.checking.invalid_rules import Refusal
    from convt_conformance.loading.scope import parse_versions

    scope, _ = parse_versions({"fw-dist": "==1.0"})
    assert scope is not None
    refusal = Refusal(re.compile("not implemented"), scope)
    monkeypatch.setattr(check_mod, "refusal_of", lambda fw, text: (refusal, scope.holds(lambda d: VERSION[0])))

    class _Fw:
        name = "fw"

    VERSION = ["1.0"]
    assert check_mod._refused(_Fw(), RuntimeError("not implemented: groups")) == (True, "")  # type: ignore[arg-type]
    VERSION[0] = "2.0"
    monkeypatch.setattr("convt_conformance.loading.scope.installed_version", lambda d: "2.0")
    refused, why = check_mod._refused(_Fw(), RuntimeError("not implemented: groups"))  # type: ignore[arg-type]
    assert not refused and "knows as `unsupported` on fw-dist ==1.0, not on fw-dist 2.0" in why
    monkeypatch.setattr(check_mod, "refusal_of", lambda fw, text: (None, False))
    assert check_mod._refused(_Fw(), RuntimeError("boom")) == (False, "")


def test_every_packaged_refusal_names_its_releases():
    from convt_conformance.checking.invalid_rules import framework_rejections

    rejections = framework_rejections()
    refusals = [r for rej in rejections.values() for r in rej.unsupported]
    assert len(refusals) >= 10 and all(r.versions.specs for r in refusals)
