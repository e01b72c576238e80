"""Known crashes run in a child process of their own (convt_conformance/run/isolate.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from convt_conformance.adapters.registry import get_adapter
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_file
from convt_conformance.loading.known import load_known
from convt_conformance.run import isolate
from convt_conformance.run.forkserver import ForkServer
from convt_conformance.run.isolate import check_or_isolate, crash_text, expected_to_crash, run_isolated
from tests.conftest import ROOT

DOC = CASES_DIR / "documents"
KNOWN = ('disagreements:\n  - {id: e1, case: CASE, adapter: numpy, api: "scatter", dtype: float32, versions: {numpy: ">=1"},'
         ' outcome: KIND, reason: "r"}\n')


@pytest.fixture(autouse=True)
def _fresh_servers():
    """Each test starts its own fork servers (they keep the environment they started with)."""
    isolate.close_servers()
    yield
    isolate.close_servers()


#: a sitecustomize that misbehaves where ISOLATE_TEST_WHERE says: "start" (the process that would
#: be forked from, or the plain child, at its start) or "fork" (each forked child)
SITE = """\
import os, sys, time
def _misbehave():
    if os.environ.get("ISOLATE_TEST_HANG"):
        time.sleep(30)
    sys.stderr.write("F1201 fake.cc:1] Check failed: planted abort\\n"); sys.stderr.flush(); os.abort()
if os.environ.get("ISOLATE_TEST_WHERE") == "start":
    _misbehave()
elif os.environ.get("ISOLATE_TEST_WHERE") == "fork":  # the forked child's check misbehaves
    def _patch():
        served = sys.modules["__main__"]  # the server: python -m convt_conformance.run.isolate --serve
        if hasattr(served, "run_check"):
            served.run_check = lambda *args, **kwargs: _misbehave()
    os.register_at_fork(after_in_child=_patch)
"""


def _plant(tmp_path, monkeypatch, where: str, hang: bool = False) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("ISOLATE_TEST_WHERE", where)
    if hang:
        monkeypatch.setenv("ISOLATE_TEST_HANG", "1")


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


@pytest.mark.parametrize("where", ["fork", "start"])
def test_a_child_that_dies_is_a_crash_with_its_stderr(tmp_path, monkeypatch, where):
    """The child aborts (a sitecustomize on its PYTHONPATH), forked from the numpy server
    ("fork") or, where that server cannot start, as a new process ("start"): recorded as a crash
    of the check with the native message, then the known entry applies (xfail)."""
    f, case = _case()
    _plant(tmp_path, monkeypatch, where)
    known = _known(tmp_path, case.id, "crash")
    rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", known, 60, "x")
    assert (rec.status, rec.underlying_status, rec.failure_kind) == ("xfail", "crash", "crash")
    assert "signal 6" in rec.message and "planted abort" in (rec.crash_output or "")
    assert rec.file == case.file and rec.params == case.params()  # the shape of any record
    assert isinstance(isolate._SERVERS["numpy"], ForkServer) == (where == "fork")
    isolate.close_servers()
    monkeypatch.delenv("ISOLATE_TEST_WHERE")
    rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", [], 60, "x")
    assert rec.status == "pass"


@pytest.mark.parametrize("where", ["fork", "start"])
def test_a_child_past_the_limit_is_a_timeout(tmp_path, monkeypatch, where):
    f, case = _case()
    _plant(tmp_path, monkeypatch, where, hang=True)
    rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", [], 1.0, "x")
    assert (rec.status, rec.failure_kind) == ("crash", "timeout") and "1 s" in rec.message
    if where == "start":  # the server's failed start and the new process share the one limit
        isolate.close_servers()  # (its server is tried again)
        t0 = time.monotonic()
        rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", [], 3.0, "x")
        assert rec.failure_kind == "timeout" and time.monotonic() - t0 < 5.0  # not 3 s twice
    if where == "fork":  # the server killed the hung child and goes on serving (its children still hang)
        server = isolate._SERVERS["numpy"]
        assert isinstance(server, ForkServer)
        rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", [], 1.0, "x")
        assert (rec.status, rec.failure_kind) == ("crash", "timeout") and isolate._SERVERS["numpy"] is server


def test_children_fork_from_one_server(tmp_path):
    """Two checks expected to crash: one server for the framework, a new child each (their pids
    differ, the server's stays)."""
    f, case = _case()
    known = _known(tmp_path, case.id, "crash")
    a = get_adapter("numpy")
    first = check_or_isolate(case, str(f), a, "scatter", "cpu", "float32", "strict", known, 60)
    server = isolate._SERVERS["numpy"]
    second = check_or_isolate(case, str(f), a, "scatter", "cpu", "float32", "strict", known, 60)
    assert isinstance(server, ForkServer) and isolate._SERVERS["numpy"] is server
    assert first.status == second.status == "xpass"
    assert first.max_abs_err == second.max_abs_err


def test_an_adapter_not_fork_safe_takes_a_new_process(tmp_path, monkeypatch):
    f, case = _case()
    monkeypatch.setattr(type(get_adapter("numpy")), "fork_isolation", False)
    rec = run_isolated(case, str(f), "numpy", "scatter", "scatter", "cpu", "float32", "strict", [], 60, "x")
    assert rec.status == "pass" and isolate._SERVERS["numpy"] is None


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
