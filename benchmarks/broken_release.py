"""Benchmark: a run against a badly broken release must not be slower than a passing one.

    python benchmarks/broken_release.py [--profile default] [-n 2] [--apis bug-*]

Runs `conformance run` on the mutation catalogue's framework double (mutation/site, the
`mutant` framework: most of its APIs are planted bugs, so most checks fail), and prints the
wall time, the summed time of the checks themselves (record["seconds"]), their ratio (issue 11's
goal: <= 1.3 however many fail), and how many checks failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="default")
    ap.add_argument("-n", default="2")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from conformance.results import read_results

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "mutation" / "site")])}
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "results.json"
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "conformance", "run", "--frameworks", "mutant", "--profile",
                            args.profile, "-n", args.n, "--no-probes", "--results", str(res)],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        data = read_results(res)
    res_ = data["results"]
    checks_s = sum(r.get("seconds") or 0.0 for r in res_)
    statuses = collections.Counter(r["status"] for r in res_)
    per_worker = checks_s / int(args.n)
    print(f"wall {wall:.1f} s, checks {len(res_)}, summed check time {checks_s:.1f} s "
          f"({per_worker:.1f} s per worker with -n {args.n}); wall / per-worker check time "
          f"{wall / per_worker:.2f}; exit {p.returncode}")
    print("statuses:", dict(sorted(statuses.items())))
    print("last line:", p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
