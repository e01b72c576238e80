"""The cost of a release matrix against one run: ``conformance run --frameworks F --profile P``
once in the project's environment, then ``conformance releases F --last N --profile P`` (environment
creation included, from whatever the cache holds), then the same releases command again (every
environment from the cache). Prints the three wall times and the ratios; the goal for a matrix of
4 releases with the default profile is at most 4.5x the single run.

    python benchmarks/release_matrix.py keras --last 4
    python benchmarks/release_matrix.py onnxruntime --last 4 --profile default
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(cmd: list[str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", help="a framework or one of its distributions")
    ap.add_argument("--last", type=int, default=4)
    ap.add_argument("--profile", default="default")
    ap.add_argument("-n", default="auto")
    args = ap.parse_args()
    from convt_conformance.releases.target import resolve_target

    framework = resolve_target(args.target).framework
    conformance = [sys.executable, "-m", "convt_conformance"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        one, rc1 = _timed([*conformance, "run", "--frameworks", framework, "--profile", args.profile, "-n", args.n,
                           "--results", "one.json"], cwd)
        rel = [*conformance, "releases", args.target, "--last", str(args.last), "--profile", args.profile,
               "-n", args.n, "--out", "matrix"]
        first, rc2 = _timed(rel, cwd)
        second, rc3 = _timed(rel, cwd)
    print(f"{args.target}: one {args.profile} run of {framework}: {one:.1f} s (exit {rc1})")
    print(f"releases --last {args.last}, first invocation: {first:.1f} s = {first / one:.2f}x (exit {rc2})")
    print(f"releases --last {args.last}, second invocation (cached environments): {second:.1f} s = "
          f"{second / one:.2f}x (exit {rc3})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
