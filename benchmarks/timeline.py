"""Benchmark: where a run's time goes, process by process.

    python benchmarks/timeline.py [--profile quick] [-n 2] [--frameworks a,b] [--gaps 1.0]

Runs ``conformance run`` as a user would (cold: fresh JAX and torch inductor caches) with
``CONFORMANCE_TIMELINE`` set (convt_conformance/run/timeline.py), then prints, for each process
of the run, its events in seconds after the command started: when the plugin started there,
when the plan was made or read, when the preflight's findings came, the first and last item, the
seconds its items took per framework, the items longer than ``--gaps`` seconds and the idle
gaps between items longer than that; and the command's own wall time.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from caches import cache_env  # benchmarks/caches.py (this folder is the script's sys.path[0])

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from convt_conformance.run.timeline import TIMELINE_ENV  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("-n", default="2")
    ap.add_argument("--frameworks", default="")
    ap.add_argument("--gaps", type=float, default=1.0, help="show items and idle gaps longer than this (s)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="conformance-timeline-"))
    folder, cache = tmp / "timeline", tmp / "cache"
    folder.mkdir()
    env = {**cache_env(cache), TIMELINE_ENV: str(folder)}
    cmd = [sys.executable, "-m", "convt_conformance", "run", "-n", args.n, "--profile", args.profile,
           "--results", str(tmp / "results.json")]
    if args.frameworks:
        cmd += ["--frameworks", args.frameworks]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    for path in sorted(folder.glob("*.txt")):
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        items = [ln for ln in lines if ln[1] == "item"]
        print(f"process {path.stem}: {len(items)} items")
        for ln in lines:
            if ln[1] != "item":
                print(f"  {float(ln[0]) - t0:7.2f} s  {' '.join(ln[1:])}")
        if not items:
            continue
        busy: dict[str, float] = defaultdict(float)
        previous_end = None
        for ln in items:
            start, end = float(ln[2]), float(ln[0])
            busy[ln[3]] += end - start
            if previous_end is not None and start - previous_end > args.gaps:
                print(f"  {previous_end - t0:7.2f} s  idle {start - previous_end:.2f} s")
            if end - start > args.gaps:
                print(f"  {start - t0:7.2f} s  item {end - start:.2f} s: {' '.join(ln[3:])}")
            previous_end = end
        first, last = float(items[0][2]) - t0, float(items[-1][0]) - t0
        print(f"  first item {first:.2f} s, last item's end {last:.2f} s, items {sum(busy.values()):.1f} s: "
              + ", ".join(f"{k} {v:.1f}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1])))
    print(f"wall time {wall:.1f} s, exit code {proc.returncode}; "
          f"{(proc.stdout.strip().splitlines() or [''])[-1]}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
