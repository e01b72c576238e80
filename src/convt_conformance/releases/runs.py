"""A profile run in each release's environment, and the release matrix of their results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from convt_conformance.releases.envs import ReleaseEnv, release_env
from convt_conformance.releases.target import Target
from convt_conformance.report.releases_page import write_release_matrix
from convt_conformance.results.files import write_atomic
from convt_conformance.results.release_matrix import ReleaseMatrix, release_matrix
from convt_conformance.results.store import read_results


@dataclass
class ReleaseRun:
    """One release's run: its environment, results file, exit code and wall time (seconds, the
    environment's creation included in ``env.created_s``)."""

    version: str
    env: ReleaseEnv
    results: Path
    returncode: int
    wall_s: float


def results_path(out_dir: Path, target: Target, version: str) -> Path:
    """Where a release's results go: ``<out>/results-<distribution>-<version>.json``."""
    return out_dir / f"results-{target.distribution}-{version}.json"


def run_in_env(env: ReleaseEnv, framework: str, results: Path, run_args: Sequence[str]) -> int:
    """``conformance run --frameworks <framework> --results <results> <run_args>`` with the
    environment's Python; its output goes to ours. The exit code (1: not clean, which an old
    release may well be)."""
    cmd = [str(env.python), "-m", "convt_conformance", "run", "--frameworks", framework,
           "--results", str(results), *run_args]
    return subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode


def run_release(target: Target, version: str, out_dir: Path, run_args: Sequence[str], *,
                cache: Path | None = None, index_args: Sequence[str] = ()) -> ReleaseRun:
    """Make (or reuse) the release's environment and run the suite there."""
    start = time.perf_counter()
    env = release_env(target.requirements(version), [target.module], cache=cache, index_args=index_args)
    made = f"made in {env.created_s:.1f} s" if env.created_s else "from the cache"
    print(f"conformance releases: {target.distribution} {version}: environment {made} ({env.mode}: {env.root})",
          file=sys.stderr, flush=True)
    results = results_path(out_dir, target, version)
    rc = run_in_env(env, target.framework, results, run_args)
    return ReleaseRun(version, env, results, rc, time.perf_counter() - start)


def existing_run(out_dir: Path, target: Target, version: str) -> ReleaseRun:
    """A release's run known only by its results file in ``out_dir`` (``--matrix-only``)."""
    env = ReleaseEnv(Path(), Path(), tuple(target.requirements(version)), "results only", 0.0)
    return ReleaseRun(version, env, results_path(out_dir, target, version), 0, 0.0)


def matrix_of(target: Target, runs: Sequence[ReleaseRun]) -> ReleaseMatrix:
    """The release matrix of runs whose results file was written (in release order)."""
    done = [r for r in runs if r.results.is_file()]
    payloads = [read_results(r.results) for r in done]
    return release_matrix(target.framework, target.distribution, [r.version for r in done], payloads)


#: the files :func:`write_outputs` writes in the output folder: the page, its data
MATRIX_FILES = ("matrix.html", "matrix.json")


def write_outputs(out_dir: Path, target: Target, runs: Sequence[ReleaseRun]) -> tuple[ReleaseMatrix, Path]:
    """The matrix page (``<out>/matrix.html``) and its data (``<out>/matrix.json``): :data:`MATRIX_FILES`."""
    matrix = matrix_of(target, runs)
    info = [{"results": r.results.name, "wall_s": r.wall_s, "mode": r.env.mode, "env_s": r.env.created_s,
             "returncode": r.returncode} for r in runs if r.results.is_file()]
    page = out_dir / MATRIX_FILES[0]
    write_release_matrix(page, matrix, info)
    data = {"framework": matrix.framework, "distribution": matrix.distribution, "releases": matrix.releases,
            "checks_per_release": matrix.checks_per_release, "same": matrix.same, "runs": info,
            "rows": [{"check": row.check.id, "outcomes": row.outcomes, "spans": row.spans} for row in matrix.rows]}
    write_atomic(out_dir / MATRIX_FILES[1], json.dumps(data, indent=1))
    return matrix, page
