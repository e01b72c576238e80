"""Known crashes run in a child process of their own (convt_conformance/run/isolate.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from convt_conformance.adapters.registry import get_adapter
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_file
from convt_conformance.loading.known import load_known
from convt_conformance.run.isolate import check_or_isolate, crash_text, expected_to_crash, run_isolated
from tests.conftest import ROOT

DOC = CASES_DIR / "documents"
KNOWN = ('disagreements:\n  - {id: e1, case: CASE, adapter: numpy, api: "scatter", dtype: float32, versions: {numpy: ">=1"},'
         ' outcome: KIND, reason: "r"}\n')


def _case():
    f = sorted(DOC.glob("*.yaml"))[0]
    return f, next(c for c in load_file(f).cases if not c.expected_error and "float32" in c.dtypes)


def _known(tmp_path, case_id, kind):
    p = tmp_path / "known.yaml"
    p.write_text(KNOWN.replace("CASE", case_id).replace("KIND", kind))
    known, problems = load_known(p)
    assert not problems
    return known


def test_only_explicit_crash_entries_isolate(tmp_path):
    _, case = _case()
    fields = {"adapter": "numpy", "api": "scatter", "device": "cpu", "dtype": "float32", "precision": "strict"}
    assert expected_to_crash(_known(tmp_path, case.id, "crash"), case, **fields)
    assert expected_to_crash(_known(tmp_path, case.id, '"crash*"'), case, **fields)
    assert not expected_to_crash(_known(tmp_path, case.id, "fail/value"), case, **fields)
    assert not expected_to_crash(_known(tmp_path, case.id, '"*"'), case, **fields)  # any-outcome entries run in place
    assert not expected_to_crash(_known(tmp_path, case.id, "crash"), case, **{**fields, "dtype": "float64"})


def test_a_child_that_survives_gives_the_in_process_record(tmp_path):
    f, case = _case()
    a = get_adapter("numpy")
    a.configure("strict")
    here = run_check(case, a, "scatter", "cpu", "float32", "strict", [])
    known = _known(tmp_path, case.id, "crash")
    there = check_or_isolate(case, str(f), a, "scatter", "cpu", "float32", "strict", known, 60)
    # it passes where a crash was expected: the strict entry's check is fixed, an xpass, as in the
    # worker (the record the child wrote, then the entry applied in the parent)
    assert here.status == "pass" and there.status == "xpass" and there.underlying_status == "pass"
    assert there.known is not None and there.known["id"] == "e1"
    for key in ("case", "file", "adapter", "api", "dtype", "shape", "max_abs_err", "tolerance"):
        assert there[key] == here[key], key


def test_a_child_that_dies_is_a_crash_with_its_stderr(tmp_path, monkeypatch):
    """The child aborts at start (a sitecustomize on its PYTHONPATH): recorded as a crash of the
    check with the native message, then the known entry applies (xfail)."""
    f, case = _case()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\nif os.environ.get('ISOLATE_TEST_ABORT'):\n"
        "    sys.stderr.write('F1201 fake.cc:1] Check failed: planted abort\\n'); sys.stderr.flush(); os.abort()\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("ISOLATE_TEST_ABORT", "1")
    known = _known(tmp_path, case.id, "crash")
    rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", known, 60, "x")
    assert (rec.status, rec.underlying_status, rec.failure_kind) == ("xfail", "crash", "crash")
    assert "signal 6" in rec.message and "planted abort" in (rec.crash_output or "")
    assert rec.file == case.file and rec.params == case.params()  # the shape of any record
    monkeypatch.delenv("ISOLATE_TEST_ABORT")
    rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", [], 60, "x")
    assert rec.status == "pass"


def test_a_child_past_the_limit_is_a_timeout(tmp_path, monkeypatch):
    f, case = _case()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os, time\nif os.environ.get('ISOLATE_TEST_HANG'):\n"
                                           "    time.sleep(30)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("ISOLATE_TEST_HANG", "1")
    rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", [], 1.0, "x")
    assert (rec.status, rec.failure_kind) == ("crash", "timeout") and "1 s" in rec.message


def test_crash_text_keeps_the_native_message_and_the_stack():
    lines = ["noise"] * 50 + ["F1201 x.cc:586] Check failed: bad window"] + [f"frame {i}" for i in range(100)]
    text = crash_text("\n".join(lines)) or ""
    assert text.splitlines()[0].startswith("F1201") and "frame 99" in text and "noise" not in text
    assert crash_text("") is None and crash_text("one line\n") == "one line"


def test_the_child_entry_point_prints_one_record():
    f, case = _case()
    req = json.dumps({"file": str(f), "display": case.file, "case": case.id, "adapter": "numpy", "api": "recipe",
                      "device": "cpu", "dtype": "float32", "precision": "strict"})
    p = subprocess.run([sys.executable, "-m", "convt_conformance.run.isolate"], input=req, capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout.strip().splitlines()[-1])
    assert (rec["case"], rec["api"], rec["status"]) == (case.id, "recipe", "pass")
