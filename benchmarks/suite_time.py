"""Benchmark: wall time of the default CPU run and (case, dtype) checks per framework.

Usage: python benchmarks/suite_time.py [-n 2] [--profile default] [--warm] [--results FILE]
Runs `conformance run` as a user would (cold: fresh JAX compilation and torch inductor caches,
unless --warm, which reuses benchmarks' own cache folder from the previous run), then
prints the wall time, checks per second, and per framework the number of distinct
(case, dtype) pairs that executed (not unsupported) and the summed check seconds.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from caches import cache_env  # benchmarks/caches.py (this folder is the script's sys.path[0])

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", default="2")
    ap.add_argument("--warm", action="store_true", help="keep the JAX persistent compilation cache")
    ap.add_argument("--results", default="/tmp/bench-results.json")
    ap.add_argument("--profile", default="default")
    args = ap.parse_args()
    cache = Path("/tmp/convt-bench-cache")
    if not args.warm:
        shutil.rmtree(cache, ignore_errors=True)
    env = cache_env(cache)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "-n", args.n, "--profile", args.profile,
                           "--results", args.results], cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    sys.path.insert(0, str(ROOT))
    from convt_conformance.results.store import read_results

    data = read_results(args.results)
    res = data["results"]
    executed = collections.defaultdict(set)
    seconds = collections.Counter()
    checks = collections.Counter()
    for r in res:
        checks[r["adapter"]] += 1
        seconds[r["adapter"]] += r.get("seconds") or 0.0
        if r["status"] != "unsupported":
            executed[r["adapter"]].add((r["case"], r["dtype"]))
    print(f"wall time: {wall:.1f} s with -n {args.n}, profile {args.profile} ({'warm' if args.warm else 'cold'} caches); "
          f"exit code {proc.returncode}")
    print(f"checks: {len(res)} ({len(res) / wall:.1f} checks/s)")
    for a in sorted(checks):
        print(f"  {a:<11} checks {checks[a]:>6}  distinct (case, dtype) executed {len(executed[a]):>5}  "
              f"check time {seconds[a]:7.1f} s")
    statuses = collections.Counter(r.status.value for r in res)
    print("statuses:", dict(sorted(statuses.items())))
    print("last line:", (proc.stdout.strip().splitlines() or [""])[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
