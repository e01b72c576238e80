"""A group item of checks runs one pytest phase with one report, and the quiet run prints progress lines, not a
letter per check (convt_conformance/run/item_protocol.py); workers get their share of the CPUs' threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from convt_conformance.cli.run import worker_threads
from convt_conformance.library import CASES_DIR
from convt_conformance.model.check_id import Check, parse_check_id
from convt_conformance.results.store import read_results
from convt_conformance.run.grouping import parse_group_name
from tests.conftest import ROOT


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_check_is_one_call_report_and_progress_replaces_letters(tmp_path, workers):
    res, phases = tmp_path / "results.json", tmp_path / "phases.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHASES_OUT": str(phases)}
    p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--results", str(res),
                        "--cases", str(CASES_DIR / "documents"), "--frameworks", "numpy", "-n", workers,
                        "--", "-p", "tests.phase_plugin"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    data = read_results(res)
    reports = [json.loads(line) for line in phases.read_text().splitlines()]
    groups = [r for r in reports if parse_group_name(r[0]) is not None]
    assert groups and {r[1] for r in groups} == {"call"}, sorted({r[1] for r in groups})
    assert len(groups) == len({r[0] for r in groups})  # one report an item
    n = len(data["results"])
    assert n == len({Check.of(r) for r in data["results"]}) and len(groups) < n  # many checks an item
    assert not [r for r in reports if parse_check_id(r[0]) is not None]  # no item of a single check
    # the probe item (not a check) keeps pytest's three phases
    assert {r[1] for r in reports if parse_group_name(r[0]) is None} == {"setup", "call", "teardown"}
    assert f"checks: {n:,}/{n:,} (100%), 0 unexpected" in p.stdout, p.stdout[-2000:]
    lines = p.stdout.splitlines()
    assert not any(set(line.strip()) <= set(".sxXF") and line.strip() for line in lines), p.stdout[-2000:]
    # pytest's summary line counts the items (+ the probe item)
    assert f"\n{len(groups) + 1} passed" in p.stdout, p.stdout[-500:]


@pytest.mark.parametrize(("n", "cpus", "threads"), [("0", 2, None), ("1", 8, None), ("2", 2, 1), ("2", 8, 4),
                                                    ("auto", 2, 1), ("auto", 1, None), ("3", 2, 1)])
def test_worker_threads_share_the_cpus(n, cpus, threads):
    assert worker_threads(n, cpus) == threads


def test_progress_prints_every_tenth_and_the_first_unexpected_result():
    from types import SimpleNamespace

    from convt_conformance.run.item_protocol import Progress

    lines: list[str] = []
    tr = SimpleNamespace(ensure_newline=lambda: None, write_line=lines.append)
    config = SimpleNamespace(get_verbosity=lambda: -1, pluginmanager=SimpleNamespace(get_plugin=lambda name: tr))
    counts = [0, 0]
    progress = Progress(config, lambda: 20, lambda: (counts[0], counts[1]))  # type: ignore[arg-type]
    nodeid = "cases/a.yaml::@3:numpy.scatter-cpu-float32"
    assert parse_group_name(nodeid) is not None and parse_check_id(nodeid) is None
    for i in range(10):  # a report of two checks each, the third report with one unexpected
        counts[0] += 2
        counts[1] += int(i == 2)
        progress.pytest_runtest_logreport(SimpleNamespace(when="call", nodeid=nodeid, failed=i == 2))  # type: ignore[arg-type]
    progress.pytest_runtest_logreport(SimpleNamespace(when="setup", nodeid=nodeid, failed=True))  # type: ignore[arg-type]
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert done == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20], lines
    assert lines[2].startswith("checks: 6/20 (30%), 1 unexpected") and "1 unexpected" in lines[-1]
