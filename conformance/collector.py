"""The controller's side of a run: it receives every item's report, keeps one record per check,
streams each record to disk as it arrives (so a controller that dies leaves what was done), turns
a worker that died into a ``crash`` record, and knows which checks were collected (so a run is
``complete`` only when every collected check has a record)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import pytest

from conformance.check import apply_known
from conformance.check_id import parse_check_id
from conformance.run_state import RunState
from conformance.status import Status
from conformance.watchdog import crash_output, timed_out

RECORD_KEY = "conformance_record"
PROBES_KEY = "conformance_probes"
PROBLEM_KEY = "conformance_problem"
SELECTION_KEY = "conformance_selection"


def stream_path(results: str | os.PathLike) -> Path:
    """Where the records of a run in progress are appended (one JSON object a line)."""
    p = Path(results)
    return p.with_name(p.name + ".stream.jsonl")


def crash_record(report: pytest.TestReport, st: RunState, check_timeout: float) -> dict[str, Any]:
    """The record of a check whose process died (or that failed outside the check)."""
    key = parse_check_id(report.nodeid)
    text = str(report.longrepr)[-1500:] if report.longrepr else ""
    crashed = "crashed" in text or "worker" in text and "died" in text
    base = key._asdict() if key else {"case": report.nodeid, "adapter": "?", "api": "?", "device": "?", "dtype": "?"}
    rec: dict[str, Any] = {
        **base, "status": (Status.CRASH if crashed else Status.ERROR).value, "nodeid": report.nodeid,
        "precision": st.precision, "expected_shape": None, "shape": None, "tags": [], "native_call": None,
        "known": None,
        "message": ("the process running this check died (" + text.strip().splitlines()[-1][:300] + ")")
        if crashed else f"unexpected failure outside the check: {text[-600:]}"}
    if not crashed:
        return rec
    where = timed_out(st.watchdog_dir, report.nodeid)
    if where is not None:
        rec.update(failure_kind="timeout",
                   message=f"no result within --check-timeout {check_timeout:g} s: the worker was stopped; "
                           f"it was in {where}")
    else:
        rec["failure_kind"] = "crash"
        output = crash_output(st.watchdog_dir, report.nodeid)
        if output:
            rec["crash_output"] = output  # the worker's last stderr lines: the native abort message
    return rec


class ResultsCollector:
    """Registered on every process; only the controller's copy receives all reports."""

    def __init__(self, config: pytest.Config, state: RunState) -> None:
        self.config = config
        self.state = state
        self.records: dict[str, dict] = {}
        self.problems: dict[str, str] = {}
        self.probes: list[dict] = []
        self.expected: set[str] | None = None  # node ids of the checks collected (None: not known yet)
        self._stream: IO[str] | None = None

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

    def _keep(self, nodeid: str, rec: dict) -> None:
        self.records[nodeid] = rec
        if self._stream is not None:
            self._stream.write(json.dumps(rec, default=str) + "\n")
            self._stream.flush()

    def _expect(self, ids) -> None:
        checks = {i for i in ids if parse_check_id(i)}
        self.expected = checks if self.expected is None else self.expected | checks

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        """xdist controller: the checks the workers collected (every worker collects the same)."""
        self._expect(ids)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not hasattr(self.config, "workerinput") and self.config.pluginmanager.get_plugin("dsession") is None:
            self._expect(item.nodeid for item in session.items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, raw in report.user_properties:
            value = str(raw)
            if key == RECORD_KEY and report.nodeid not in self.records:
                self._keep(report.nodeid, json.loads(value))
            elif key == PROBLEM_KEY:
                self.problems[report.nodeid] = value
            elif key == PROBES_KEY and not self.probes:
                self.probes = json.loads(value)
            elif key == SELECTION_KEY and not self.state.selection:
                self.state.selection = json.loads(value)
        if report.failed and report.nodeid not in self.records and parse_check_id(report.nodeid):
            rec = crash_record(report, self.state, self.config.getoption("check_timeout"))
            apply_known(rec, self.state.known)
            self._keep(report.nodeid, rec)

    def missing(self) -> list[str]:
        """Collected checks without a record (all of them when collection never finished)."""
        if self.expected is None:
            return ["<collection did not finish>"]
        return sorted(self.expected - set(self.records))
