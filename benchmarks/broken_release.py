"""Benchmark: a run against a badly broken release must not be slower than a passing one.

    python benchmarks/broken_release.py [--profile default] [-n 2]

Runs `conformance run` (results and report, as README's main command) twice on the mutation catalogue's framework double (mutation/site, the
`mutant` framework): once on its correct variants only (``ok_*`` APIs: every check passes) and
once on its planted bugs only (``bug_*``: most checks fail), and prints for each the wall time,
the checks, the summed time of the checks themselves (record["seconds"]), wall per check, and
the last line the user sees, and when the last check reported (the progress line at 100%) beside
the wall time. The goal: wall time <= 1.3x the checks' own time however many fail (what
comes after the last check: the summary, the results file and the report), and the failing run
costs no more per check than the passing one: no per-failure sections, no quadratic summary.
The mutants compute in NumPy in well under a millisecond, so per check this measures the
harness itself, the strictest form of the comparison.
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
    from convt_conformance.results.store import read_results

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "mutation" / "site")])}
    per_check = {}
    for label, select in (("passing (ok_*)", "mutant and ok_"), ("failing (bug_*)", "mutant and bug_")):
        with tempfile.TemporaryDirectory() as tmp:
            res = Path(tmp) / "results.json"
            t0 = time.perf_counter()
            p = subprocess.Popen([sys.executable, "-m", "convt_conformance", "run", "--frameworks", "mutant", "--profile",
                                  args.profile, "-n", args.n, "--no-probes", "--results", str(res), "--report",
                                  str(Path(tmp) / "report.html"), "--", "-k", select],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            lines, checks_done = [], None
            assert p.stdout is not None
            for line in p.stdout:  # the progress line at 100%: every check has reported
                lines.append(line)
                if checks_done is None and line.startswith("checks: ") and "(100%)" in line:
                    checks_done = time.perf_counter() - t0
            p.wait()
            wall = time.perf_counter() - t0
            data = read_results(res)
        res_ = data["results"]
        checks_s = sum(r.get("seconds") or 0.0 for r in res_)
        statuses = collections.Counter(r.status.value for r in res_)
        per_check[label] = wall / max(1, len(res_))
        print(f"{label}: wall {wall:.1f} s, checks {len(res_)} ({1e3 * per_check[label]:.2f} ms wall a check), "
              f"summed check time {checks_s:.1f} s; exit {p.returncode}")
        print("  statuses:", dict(sorted(statuses.items())))
        print("  last line:", lines[-1].strip() if lines else "")
        if checks_done:
            print(f"  every check done at {checks_done:.1f} s; wall / that: {wall / checks_done:.2f} (goal <= 1.3: "
                  "the summary, results and report after the last check)")
    a, b = per_check.values()
    print(f"wall per check, failing / passing: {b / a:.2f} (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
