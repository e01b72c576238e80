"""A framework named in --frameworks that cannot run is never dropped silently: one whose import
segfaults, hangs or raises only in the xdist workers (the preflight's child sets it up fine) is
left out after one worker's try, bounded by the worker's watchdog (--setup-timeout), and the run
is NOT CLEAN, its verdict naming the framework and why (tests/data/plugins/workerfail)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from convt_conformance.results.store import read_results
from tests.conftest import DATA, ROOT

WORKERFAIL = DATA / "plugins" / "workerfail"
CASES = """defaults: {dtypes: [float64, float32]}
cases:
  - id: setup-a
    input: {values: [[[1, 2]]]}
    weight: {values: [[[1, 1]]]}
    expected: {shape: [1, 1, 3], values: [[[1, 3, 2]]]}
  - id: setup-b
    input: {values: [[[2, 1]]]}
    weight: {values: [[[1, 1]]]}
    expected: {shape: [1, 1, 3], values: [[[2, 3, 1]]]}
"""
SETUP_TIMEOUT = 60


def _run(tmp_path, mode):
    cases, res = tmp_path / "setup.yaml", tmp_path / "results.json"
    cases.write_text(CASES)
    # (not this test's own xdist worker variables: the fake fails wherever PYTEST_XDIST_WORKER is set)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKERFAIL)]), "WORKERFAIL_MODE": mode}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--results", str(res), "--cases", str(cases),
                        "--frameworks", "numpy,workerfail", "-n", "2", "--no-probes",
                        "--setup-timeout", str(SETUP_TIMEOUT)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return p, read_results(res), time.monotonic() - t0


def test_the_worker_only_fake_runs_when_it_does_not_fail(tmp_path):
    p, data, _ = _run(tmp_path, "none")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert {r["adapter"] for r in data["results"]} == {"numpy", "workerfail"}
    assert p.stdout.strip().splitlines()[-1].startswith("verdict: CLEAN")


@pytest.mark.parametrize("mode, why", [
    ("segfault", "the worker setting it up (import, configure) died: Fatal Python error: Segmentation fault"),
    ("hang", f"setting it up in a worker (import, configure) did not finish within {SETUP_TIMEOUT} s (--setup-timeout)"),
    ("raise", "workerfail is not available: ImportError: workerfail: simulated import failure in a worker"),
])
def test_a_requested_framework_failing_to_set_up_in_the_workers_only_is_not_clean(tmp_path, mode, why):
    p, data, took = _run(tmp_path, mode)
    out = p.stdout[-3000:] + p.stderr[-3000:]
    assert p.returncode == 1, out
    verdict = p.stdout.strip().splitlines()[-1]
    assert verdict.startswith(f"verdict: NOT CLEAN: 1 requested framework(s) cannot run: workerfail ({why}"), verdict
    assert data["environment"]["unavailable"]["workerfail"].startswith(why)
    assert data["selection"]["requested_frameworks"] == ["numpy", "workerfail"]
    # the other framework ran in full; the run is complete: nothing lost, nothing recorded as a crash
    assert data["complete"] is True and data.get("missing_checks") == 0, out
    assert {r["adapter"] for r in data["results"]} == {"numpy"}
    assert {r["status"] for r in data["results"]} == {"pass"}
    # at most one try in each of the 2 workers, not one a check (4 checks of workerfail), bounded by the watchdog
    assert p.stdout.count("replacing crashed worker") <= 2, out
    if mode == "hang":
        assert "workerfail_convt/native.py" in data["environment"]["unavailable"]["workerfail"]  # where it hung
        assert took < 6 * SETUP_TIMEOUT, took  # (it hung the whole run before)
