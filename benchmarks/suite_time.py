"""Benchmark: wall time of the default CPU run and (case, dtype) checks per framework.

Usage: python benchmarks/suite_time.py [-n 2] [--profile default] [--warm] [--results FILE] [--repeat N]
Runs `conformance run` as a user would (cold: fresh JAX compilation and torch inductor caches,
unless --warm, which reuses benchmarks' own cache folder from the previous run), then
prints the wall time, the machine's busy CPU seconds over the run (``/proc/stat``, all cores:
the run's processes and anything else running), the machine's speed just before
and after (benchmarks/calibration.py), checks per second, and per framework the number of
distinct (case, dtype) pairs that executed (not unsupported) and the summed check seconds.
``--repeat N``: N such runs one after the other, each line with its own calibration, then their
median wall time.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from caches import cache_env  # benchmarks/caches.py (this folder is the script's sys.path[0])
from calibration import loop_seconds

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", default="2")
    ap.add_argument("--warm", action="store_true", help="keep the JAX persistent compilation cache")
    ap.add_argument("--results", default="/tmp/bench-results.json")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--repeat", type=int, default=1, help="runs one after the other (each cold unless --warm)")
    args = ap.parse_args()
    walls = []
    for k in range(args.repeat):
        if args.repeat > 1:
            print(f"run {k + 1} of {args.repeat}")
        walls.append(_one(args))
    if args.repeat > 1:
        print(f"median wall time of {args.repeat}: {statistics.median(walls):.1f} s "
              f"(each: {', '.join(f'{w:.1f}' for w in walls)})")
    return 0


def _busy_seconds() -> float:
    """The machine's busy CPU seconds so far, all cores (``/proc/stat``: user, nice, system, irq,
    softirq); 0 where there is no such file. (A run's own ``RUSAGE_CHILDREN`` misses the processes
    its children start and do not wait for.)"""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _one(args: argparse.Namespace) -> float:
    """One run and its figures (module docstring); its wall time."""
    cache = Path("/tmp/convt-bench-cache")
    if not args.warm:
        shutil.rmtree(cache, ignore_errors=True)
    env = cache_env(cache)
    before = loop_seconds()
    cpu0 = _busy_seconds()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "-n", args.n, "--profile", args.profile,
                           "--results", args.results], cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    cpu = _busy_seconds() - cpu0
    after = loop_seconds()
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
    print(f"busy CPU over the run: {cpu:.1f} s of {wall * (os.cpu_count() or 1):.1f} core-seconds; the machine's "
          f"speed (calibration loop) {before:.2f} s before, {after:.2f} s after")
    print(f"checks: {len(res)} ({len(res) / wall:.1f} checks/s)")
    for a in sorted(checks):
        print(f"  {a:<11} checks {checks[a]:>6}  distinct (case, dtype) executed {len(executed[a]):>5}  "
              f"check time {seconds[a]:7.1f} s")
    statuses = collections.Counter(r.status.value for r in res)
    print("statuses:", dict(sorted(statuses.items())))
    print("last line:", (proc.stdout.strip().splitlines() or [""])[-1])
    return wall


if __name__ == "__main__":
    raise SystemExit(main())
