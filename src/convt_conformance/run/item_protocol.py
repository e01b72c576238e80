"""How a check runs inside pytest: one phase and one report, and a progress line in place of a
letter per check.

A check (an item whose class sets ``single_phase = True``: ``CaseItem``) has no fixtures and
nothing to set up or tear down, so pytest's set-up and teardown phases only cost: two more
reports a check, each built, passed through the report hooks, serialised by xdist in the worker
and unserialised and hooked again in the controller (~1 ms a check of worker and controller
time together, more than the native call of the cheap frameworks). A check runs its call phase
alone, through pytest's own ``call_and_report`` (output capture, skip and xfail outcomes, the
``makereport`` and ``logreport`` hooks: the report and its outcome are pytest's). Other items
(the convention probes, case-file problems, the project's own tests) keep pytest's protocol.

The quiet run (``conformance run`` passes ``-q``): pytest writes a letter per report, and each
write in xdist's controller releases the interpreter lock to the thread reading the workers'
events (~0.9 ms a letter on 2 cores). Checks' reports print nothing there; :class:`Progress`
prints one line at every tenth of the checks instead (done, total, unexpected so far, elapsed).
With ``-v`` (verbosity >= 0) pytest's own output is left as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from _pytest.runner import call_and_report

from convt_conformance.model.check_id import parse_check_id
from convt_conformance.run.grouping import parse_group_name

PROBE_ITEM_NAME = "convention-probes"  # the probes' item: its letter, when it passes, is left out too


def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A check: log start, the call phase (report logged), log finish; others: pytest's protocol."""
    if not getattr(item, "single_phase", False):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    call_and_report(item, "call")
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _quiet(config: pytest.Config) -> bool:
    return config.get_verbosity() < 0


@pytest.hookimpl(wrapper=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """In the quiet run, a check's report keeps its category (the counts of the summary line)
    and prints no letter (:class:`Progress` prints the progress)."""
    res = yield
    if _quiet(config) and report.when == "call" and (
            parse_check_id(report.nodeid) is not None or parse_group_name(report.nodeid) is not None
            or (report.passed and report.nodeid.endswith(f"::{PROBE_ITEM_NAME}"))):
        return (res[0], "", "")
    return res


class Progress:
    """The controller's progress line of the quiet run: at every tenth of ``total()`` checks (and
    at the first unexpected result), ``checks: done/total (p%), n unexpected, t s``; ``counts()``
    gives the checks recorded so far and how many of them are unexpected (a report may carry
    many checks: :mod:`convt_conformance.run.grouping`)."""

    STEPS = 10

    def __init__(self, config: pytest.Config, total: Callable[[], int | None],
                 counts: Callable[[], tuple[int, int]]) -> None:
        self.config, self.total, self.counts = config, total, counts
        self.unexpected = 0
        self.next_step, self.t0 = 1, time.monotonic()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("call", "???") or not _quiet(self.config) or (
                parse_check_id(report.nodeid) is None and parse_group_name(report.nodeid) is None):
            return
        done, unexpected = self.counts()
        first = unexpected > 0 and not self.unexpected
        self.unexpected = unexpected
        total = self.total() or 0
        if total and (first or done * self.STEPS >= self.next_step * total):
            while done * self.STEPS >= self.next_step * total:
                self.next_step += 1
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.ensure_newline()
                tr.write_line(f"checks: {done:,}/{total:,} ({100 * done // total}%), "
                              f"{unexpected:,} unexpected, {time.monotonic() - self.t0:.0f} s")
