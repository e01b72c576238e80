"""The controller's side of a run: it receives every item's report, keeps one record per check,
streams each record to disk as it arrives (so a controller that dies leaves what was done), turns
a worker that died into a ``crash`` record, and knows which checks were collected (so a run is
``complete`` only when every collected check has a record, or belongs to a framework left out of
the run as unavailable, which the verdict weighs).

A dead worker is told apart by xdist's hook ``pytest_handlecrashitem`` (:meth:`ResultsCollector.
pytest_handlecrashitem`), which xdist calls for the item a dead worker was running before it logs
that item's report; it is xdist's one path for such a report (``DSession.handle_crashitem``), so
no wording of its message is matched. A worker that died setting a framework up (import,
``configure``; the watchdog's file says so) leaves that framework out of the run instead: its
report becomes a skip naming the framework and why."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import pytest

from convt_conformance.checking.check import apply_known
from convt_conformance.model.case import Case
from convt_conformance.model.check_id import Check, parse_check_id
from convt_conformance.model.record import CheckRecord
from convt_conformance.model.status import FailureKind, Status
from convt_conformance.run.state import RunState
from convt_conformance.run.watchdog import (
    crash_output,
    finished_records,
    mark_unavailable,
    running_check,
    setup_failure,
    timed_out,
)

RECORD_KEY = "conformance_record"
PROBES_KEY = "conformance_probes"
PROBLEM_KEY = "conformance_problem"
SELECTION_KEY = "conformance_selection"
#: a report's user property: ``{framework: why}``, a framework that cannot run in the process that
#: tried to set it up (the check was skipped), the run leaves it out
UNAVAILABLE_KEY = "conformance_unavailable"
#: a report's user property set by the controller: xdist reported the worker running it dead
CRASHED_KEY = "conformance_worker_died"


def stream_path(results: str | os.PathLike[str]) -> Path:
    """Where the records of a run in progress are appended (one JSON object a line)."""
    p = Path(results)
    return p.with_name(p.name + ".stream.jsonl")


def run_case_files(config: pytest.Config) -> list[Path] | None:
    """The case files of a run: its ``--case-list`` (``conformance run``), else the files under
    its arguments (:func:`convt_conformance.loading.cases.discover`); None when an argument is
    not an existing path (a node id ``path::name``: pytest's own collection then)."""
    from convt_conformance.loading.cases import CASE_SUFFIXES, discover, read_case_list

    listed = config.getoption("case_list")
    if listed:
        return read_case_list(listed)
    args = [str(a) for a in config.args]
    if not args or any("::" in a or not Path(a).exists() for a in args):
        return None
    return [p for p in discover(args) if p.suffix in CASE_SUFFIXES]


def crash_record(nodeid: str, text: str, st: RunState, check_timeout: float, case: Case | None = None,
                 framework_version: str | None = None, *, crashed: bool) -> CheckRecord:
    """The record of check ``nodeid`` whose process died (``crashed``: xdist reported its worker
    dead, see :meth:`ResultsCollector.pytest_handlecrashitem`) or that failed outside the check
    (``text``: what the failure said): the shape of any other record, its case fields filled
    from ``case`` (None: the case could not be found)."""
    key = parse_check_id(nodeid)
    if key is None:
        raise ValueError(f"not a check's node id: {nodeid!r}")
    text = text[-1500:]
    if case is not None and case.id == key.case:
        rec = CheckRecord.for_case(case, adapter=key.adapter, api=key.api, device=key.device, dtype=key.dtype,
                                   precision=st.precision, framework_version=framework_version)
    else:
        rec = CheckRecord(case=key.case, adapter=key.adapter, api=key.api, device=key.device, dtype=key.dtype,
                          precision=st.precision, framework_version=framework_version)
    rec.status, rec.nodeid = (Status.CRASH if crashed else Status.ERROR), nodeid
    rec.message = (("the process running this check died (" + text.strip().splitlines()[-1][:300] + ")")
                   if crashed else f"unexpected failure outside the check: {text[-600:]}")
    if not crashed:
        return rec
    where = timed_out(st.watchdog_dir, nodeid)
    if where is not None:
        rec.failure_kind = FailureKind.TIMEOUT
        rec.message = (f"no result within --check-timeout {check_timeout:g} s: the worker was stopped; "
                       f"it was in {where}")
    else:
        rec.failure_kind = FailureKind.CRASH
        rec.crash_output = crash_output(st.watchdog_dir, nodeid) or None  # the native abort message
    return rec


class ResultsCollector:
    """Registered on every process; only the controller's copy receives all reports."""

    def __init__(self, config: pytest.Config, state: RunState) -> None:
        self.config = config
        self.state = state
        self.records: dict[str, CheckRecord] = {}
        self.problems: dict[str, str] = {}
        self.probes: list[dict[str, Any]] = []
        self.expected: set[str] | None = None  # node ids of the checks collected (None: not known yet)
        self._stream: IO[str] | None = None
        self._cases: dict[str, Case] | None = None  # the run's cases by id, for crash records
        self._marked: set[str] = set()  # frameworks the workers were told are left out
        #: the check node ids of a group item's node id (None: not a group item), set by the plugin
        self.expand: Callable[[str], list[str] | None] = lambda nodeid: None
        self.unexpected = 0  # records kept so far whose status is unexpected (the progress line)

    def open_stream(self, results: str) -> None:
        path = stream_path(results)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - lives with the run

    def close_stream(self, remove: bool) -> None:
        if self._stream is not None:
            self._stream.close()
            if remove:
                Path(self._stream.name).unlink(missing_ok=True)
            self._stream = None

    def _keep(self, nodeid: str, rec: CheckRecord, raw: str | None = None) -> None:
        """Keep ``rec`` and stream it (``raw``: its JSON as the worker sent it, written as is)."""
        self.records[nodeid] = rec
        self.unexpected += int(rec.status.unexpected)
        if self._stream is not None:
            self._stream.write((raw if raw is not None else json.dumps(rec.as_dict(), default=str)) + "\n")
            self._stream.flush()

    def _case_of(self, key: Check) -> Case | None:
        """The case a check names, from the case files of the run (loaded at the first crash):
        under xdist the controller collects nothing, and a node id does not always name its file
        (pytest leaves the path out for a file outside the rootdir). Case ids are unique in a run."""
        if self._cases is None:
            from convt_conformance.loading.cases import case_file_display, discover, load_file

            root, here = self.config.rootpath, self.config.invocation_params.dir
            files = run_case_files(self.config)
            if files is None:  # node ids given: their files
                given = [Path(os.path.normpath(here / a.split("::")[0])) for a in self.config.args]
                files = discover([p for p in given if p.exists()])
            self._cases = {}
            for f in files:
                for c in load_file(f, display=case_file_display(f, root)).cases:
                    self._cases.setdefault(c.id, c)
        return self._cases.get(key.case)

    def _framework_version(self, name: str) -> str | None:
        from convt_conformance.adapters.registry import AdapterLoadError, get_adapter

        adapter = self.state.adapters.get(name)
        try:
            return (adapter or get_adapter(name)).version()
        except AdapterLoadError:
            return None

    def framework_unavailable(self, name: str, why: str) -> None:
        """Leave ``name`` out of the run (the first reason stands) and tell the workers, so that
        its remaining checks are skipped at once rather than setting it up again."""
        self.state.unavailable.setdefault(name, why)
        if name not in self._marked:
            self._marked.add(name)
            mark_unavailable(self.state.watchdog_dir, name, self.state.unavailable[name])

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """xdist controller: the worker running ``crashitem`` died (xdist logs ``report`` next).
        Died setting the check's framework up: that framework is left out of the run and the
        report becomes a skip saying why; else the report is marked as the check's crash."""
        members = self.expand(crashitem)
        running = crashitem if members is None else running_check(self.state.watchdog_dir, members)
        if members is not None:  # a group item: the checks it finished before keep their records
            report.user_properties.extend((RECORD_KEY, r) for r in finished_records(self.state.watchdog_dir, crashitem))
        failed = setup_failure(self.state.watchdog_dir, running) if running else None
        if failed is None:
            if running:  # else it died between checks: its unfinished checks are rerun as missing
                report.user_properties.append((CRASHED_KEY, running))
            return
        name, why = failed
        self.framework_unavailable(name, why)
        report.outcome = "skipped"
        # a skip's (path, line, reason), line None as pytest's own skips of items without one
        report.longrepr = (crashitem.rsplit("::", 1)[0], None, f"Skipped: {name} cannot run: {why}")  # type: ignore[assignment]
        report.user_properties.append((UNAVAILABLE_KEY, json.dumps({name: why})))

    def _expect(self, ids: Iterable[str]) -> None:
        checks: set[str] = set()
        for i in ids:
            members = self.expand(i)
            if members is not None:
                checks.update(members)
            elif parse_check_id(i):
                checks.add(i)
        self.expected = checks if self.expected is None else self.expected | checks

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """xdist controller: the checks the workers collected (every worker collects the same)."""
        self._expect(ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not hasattr(self.config, "workerinput") and self.config.pluginmanager.get_plugin("dsession") is None:
            self._expect(item.nodeid for item in session.items)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """The record rides on the call's report only (the teardown report would carry it again)."""
        item.user_properties.clear()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(self.config, "workerinput"):  # a worker: its reports are the controller's to read
            return
        verbose = self.config.get_verbosity() > 0 and parse_check_id(report.nodeid) is None
        for key, raw in report.user_properties:
            value = str(raw)
            if key == RECORD_KEY:
                rec = CheckRecord.from_dict(json.loads(value))
                nodeid = rec.nodeid or report.nodeid
                if nodeid not in self.records:
                    self._keep(nodeid, rec, value)
                    if verbose:  # a group item's checks, a line each (pytest's line is the item's)
                        self._say(f"{nodeid} {rec.status.value.upper()}")
            elif key == PROBLEM_KEY:
                self.problems[report.nodeid] = value
            elif key == PROBES_KEY and not self.probes:
                self.probes = json.loads(value)
            elif key == SELECTION_KEY and not self.state.selection:
                self.state.selection = json.loads(value)
            elif key == UNAVAILABLE_KEY:
                for name, why in json.loads(value).items():
                    self.framework_unavailable(name, why)
        if not report.failed:
            return
        crashed = next((str(v) for k, v in report.user_properties if k == CRASHED_KEY), None)
        nodeid = crashed or report.nodeid  # a group item's crash: the check it was running
        check = parse_check_id(nodeid) if nodeid not in self.records else None
        if check is not None:
            case = self._case_of(check)
            rec = crash_record(nodeid, str(report.longrepr or ""), self.state, self.config.getoption("check_timeout"),
                               case, self._framework_version(check.adapter), crashed=crashed is not None)
            apply_known(rec, self.state.known, case)
            self._keep(nodeid, rec)

    def _say(self, line: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.ensure_newline()
            tr.write_line(line)

    def missing(self) -> list[str]:
        """Collected checks without a record (all of them when collection never finished), but
        for those of a framework left out of the run as unavailable (the verdict weighs that)."""
        if self.expected is None:
            return ["<collection did not finish>"]
        out = []
        for nodeid in sorted(self.expected - set(self.records)):
            key = parse_check_id(nodeid)
            if key is None or key.adapter not in self.state.unavailable:
                out.append(nodeid)
        return out
