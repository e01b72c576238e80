"""A framework's set-up in an xdist worker runs under the check's watchdog and is attributed: the
controller leaves a framework whose set-up died or hung out of the run and tells the workers
(convt_conformance/run/watchdog.py); a dead worker's check is told by xdist's hook
``pytest_handlecrashitem``, never by the wording of xdist's message (convt_conformance/run/collector.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from convt_conformance.adapters.base import Adapter
from convt_conformance.model.record import CheckRecord
from convt_conformance.model.status import FailureKind, Status
from convt_conformance.run.collector import CRASHED_KEY, RECORD_KEY, UNAVAILABLE_KEY, ResultsCollector
from convt_conformance.run.state import RunState
from convt_conformance.run.watchdog import (
    Watchdog,
    mark_unavailable,
    marked_unavailable,
    setup_failure,
    setup_limit,
    timed_out,
)

NODEID = "cases/x.yaml::doc-basic-2x2[numpy.scatter-cpu-float32]"
DIED = "the worker setting it up (import, configure) died: Fatal Python error: Segmentation fault"


def _died_setting_up(directory, framework="numpy", nodeid=NODEID):
    """A worker's files as the watchdog leaves them when the worker died setting ``framework`` up."""
    wd = Watchdog(directory, "gw0", 300.0)
    with wd.guard(nodeid, setting_up=framework, limit_s=0):
        pass  # (a real worker dies in here; the file stays as it was written)
    wd.path.with_suffix(".log").write_text("Fatal Python error: Segmentation fault\n\nCurrent thread 0x1:\n"
                                           '  File "native.py", line 12 in <module>\n')
    return wd


def test_a_worker_that_died_setting_up_names_the_framework_not_the_check(tmp_path):
    wd = _died_setting_up(tmp_path)
    lines = wd.path.read_text().splitlines()
    assert lines[0] == NODEID and "numpy" in lines[1]
    assert setup_failure(tmp_path, NODEID) == ("numpy", DIED)
    assert setup_failure(tmp_path, NODEID.replace("float32", "float64")) is None  # another check
    with wd.guard(NODEID):  # set up: the check itself runs now
        pass
    assert setup_failure(tmp_path, NODEID) is None


def test_a_set_up_stopped_by_the_watchdog_says_where_it_hung(tmp_path):
    setting_up = json.dumps({"framework": "workerfail", "limit_s": 20.0})
    (tmp_path / "gw1-7.txt").write_text(f"{NODEID}\nsetting up: {setting_up}\nTimeout (0:00:20)!\n"
                                        "Thread 0x1 (most recent call first):\n"
                                        '  File "/x/workerfail_convt/native.py", line 15 in <module>\n'
                                        '  File "/x/convt_conformance/run/state.py", line 90 in adapter\n')
    name, why = setup_failure(tmp_path, NODEID)
    assert name == "workerfail"
    assert why.startswith("setting it up in a worker (import, configure) did not finish within 20 s (--setup-timeout)")
    assert 'File "/x/workerfail_convt/native.py", line 15 in <module>' in why
    assert timed_out(tmp_path, NODEID) is not None  # a timeout of that worker all the same


def test_the_set_up_limit_is_the_setup_timeout_else_the_check_timeout():
    assert setup_limit(180.0, 300.0) == 180.0
    assert setup_limit(0.0, 300.0) == 300.0  # no preflight: the check's limit still bounds it
    assert setup_limit(0.0, 0.0) == 0.0


def test_the_controllers_mark_reaches_the_workers(tmp_path):
    wd = Watchdog(tmp_path, "gw0", 0)
    assert wd.unavailable("torch") is None and marked_unavailable(tmp_path, "torch") is None
    mark_unavailable(tmp_path, "torch", "the worker setting it up died")
    assert wd.unavailable("torch") == "the worker setting it up died"
    assert wd.unavailable("jax") is None
    assert setup_failure(tmp_path, NODEID) is None  # the mark is not a worker's file


def _collector(tmp_path):
    config = SimpleNamespace(getoption=lambda name: {"check_timeout": 10.0}[name], get_verbosity=lambda: -1)
    state = SimpleNamespace(watchdog_dir=str(tmp_path), unavailable={}, precision="strict", known=[], adapters={},
                            selection={"profile": "full"})
    c = ResultsCollector(config, state)  # type: ignore[arg-type]
    c._cases = {}  # no case files: the record keeps the check's identity only
    c._expect([NODEID])
    return c


def _dead_workers_report(text="worker 'gw0' went away", nodeid=NODEID):
    """The report xdist makes for the item a dead worker held (DSession.handle_crashitem)."""
    return pytest.TestReport(nodeid=nodeid, location=("cases/x.yaml", None, "cases/x.yaml"), keywords={},
                             outcome="failed", longrepr=text, when="???")  # type: ignore[arg-type]


def test_a_dead_worker_is_known_by_xdists_hook_not_by_its_wording(tmp_path):
    c = _collector(tmp_path)
    report = _dead_workers_report("gone without a word of the usual wording")
    c.pytest_handlecrashitem(crashitem=NODEID, report=report, sched=None)
    assert (CRASHED_KEY, NODEID) in report.user_properties and report.failed
    c.pytest_runtest_logreport(report)
    rec = c.records[NODEID]
    assert (rec.status, rec.failure_kind) == (Status.CRASH, FailureKind.CRASH)
    # a failure outside the check that merely says "crashed" is no worker's death
    other = _collector(tmp_path / "other")
    other.pytest_runtest_logreport(_dead_workers_report("worker 'gw0' crashed while running it"))
    assert other.records[NODEID].status is Status.ERROR
    assert other.records[NODEID].message.startswith("unexpected failure outside the check")


def test_a_group_items_death_is_the_crash_of_its_running_check_and_keeps_what_it_finished(tmp_path):
    """A worker dies in the second of three checks of a group item: the first keeps the record
    the worker streamed, the second is the crash (the watchdog file names it), the third is
    missing (``conformance run`` runs it again)."""
    group = "cases/x.yaml::@4:numpy.scatter-cpu-float32"
    ids = [f"cases/x.yaml::{c}[numpy.scatter-cpu-float32]" for c in ("a", "b", "c")]
    wd = Watchdog(tmp_path, "gw0", 0)
    wd.start_group(group)
    first = CheckRecord(case="a", adapter="numpy", api="scatter", device="cpu", dtype="float32", precision="strict")
    first.status, first.nodeid = Status.PASS, ids[0]
    wd.done(json.dumps(first.as_dict(), default=str))
    with wd.guard(ids[1]):
        pass  # it died in here: the file names this check
    c = _collector(tmp_path)
    c.expand = lambda nodeid: ids if nodeid == group else None
    c._expect([group])
    report = _dead_workers_report(nodeid=group)
    c.pytest_handlecrashitem(crashitem=group, report=report, sched=None)
    c.pytest_runtest_logreport(report)
    assert c.records[ids[0]].status is Status.PASS
    assert (c.records[ids[1]].status, c.records[ids[1]].failure_kind) == (Status.CRASH, FailureKind.CRASH)
    assert [m for m in c.missing() if m in ids] == [ids[2]]
    # died between two checks (the file names none of the group's): nothing is blamed, all rerun
    wd.start_group(group)
    with wd.guard("cases/x.yaml::other[numpy.scatter-cpu-float32]"):
        pass
    c = _collector(tmp_path)
    c.expand = lambda nodeid: ids if nodeid == group else None
    c._expect([group])
    report = _dead_workers_report(nodeid=group)
    c.pytest_handlecrashitem(crashitem=group, report=report, sched=None)
    c.pytest_runtest_logreport(report)
    assert c.records == {} and [m for m in c.missing() if m in ids] == ids


def test_a_worker_that_died_setting_up_leaves_its_framework_out(tmp_path):
    _died_setting_up(tmp_path)
    c = _collector(tmp_path)
    report = _dead_workers_report()
    c.pytest_handlecrashitem(crashitem=NODEID, report=report, sched=None)
    assert report.skipped and "numpy cannot run: " + DIED in str(report.longrepr)
    assert c.state.unavailable == {"numpy": DIED}
    assert marked_unavailable(tmp_path, "numpy") == DIED  # the workers skip its other checks
    c.pytest_runtest_logreport(report)
    assert c.records == {} and c.missing() == []  # no crash record; not missing: the verdict weighs it


def test_a_workers_skip_for_an_unavailable_framework_reaches_the_controller(tmp_path):
    c = _collector(tmp_path)
    report = pytest.TestReport(nodeid=NODEID, location=("cases/x.yaml", None, "x"), keywords={}, outcome="skipped",
                               longrepr=("cases/x.yaml", None, "Skipped: numpy cannot run"), when="call",
                               user_properties=[(UNAVAILABLE_KEY, json.dumps({"numpy": "ImportError: no"}))])
    c.pytest_runtest_logreport(report)
    assert c.state.unavailable == {"numpy": "ImportError: no"} and RECORD_KEY not in dict(report.user_properties)
    assert marked_unavailable(tmp_path, "numpy") == "ImportError: no" and c.missing() == []


class _Unconfigurable(Adapter):
    name = "unconfigurable"

    def installed(self):
        return True

    def _import(self):
        pass

    def configure(self, precision):
        raise RuntimeError("no such precision flag")


def test_a_framework_whose_configure_raises_is_unavailable_with_why():
    st = RunState(frameworks=["unconfigurable"], precision="strict", known=[], known_problems=[],
                  profile=None)  # type: ignore[arg-type]
    st.adapters["unconfigurable"] = _Unconfigurable()
    assert st.adapter("unconfigurable") is not None
    assert st.unavailable == {"unconfigurable": "unconfigurable could not be configured: RuntimeError: no such "
                                                "precision flag"}
    assert "unconfigurable" not in st.configured
