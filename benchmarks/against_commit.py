"""Benchmark: this tree's `conformance run` against an earlier commit's, alternated, same inputs.

    python benchmarks/against_commit.py BASE [--profile default] [--repeat 2] [-n 2] [--frameworks a,b]

BASE (a commit, e.g. the one before a change) is checked out in a temporary git worktree. Both
trees then run the same command, cold (fresh JAX and torch inductor caches each time), one after
the other, BASE first, ``--repeat`` times: the case library, known disagreements and framework
list are BASE's for both (``--cases``, ``--known``; ``--frameworks`` defaults to every framework
BASE registers), so only the harness differs. Prints each run's wall time, checks and verdict,
and the mean ratio this tree / BASE.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from caches import cache_env  # benchmarks/caches.py (this folder is the script's sys.path[0])

ROOT = Path(__file__).resolve().parent.parent


def _frameworks(tree: Path) -> str:
    code = "from convt_conformance.adapters.registry import BUILTIN; print(','.join(BUILTIN))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(tree / "src")},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _run(tree: Path, base: Path, args: argparse.Namespace, frameworks: str, tmp: Path) -> dict[str, object]:
    cache = tmp / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**cache_env(cache), "PYTHONPATH": str(tree / "src")}
    results = tmp / "results.json"
    library = base / "src" / "convt_conformance" / "library"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "-n", args.n, "--profile", args.profile,
                        "--cases", str(library / "cases"), "--known", str(library / "known_disagreements.yaml"),
                        "--frameworks", frameworks, "--results", str(results)],
                       cwd=tmp, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    checks = len(json.loads(results.read_text())["results"]) if results.exists() else 0
    verdict = next((ln for ln in p.stdout.splitlines() if ln.startswith("verdict:")), f"exit {p.returncode}")
    return {"wall": wall, "checks": checks, "verdict": verdict}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-n", default="2")
    ap.add_argument("--frameworks", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="against-commit-") as t:
        tmp = Path(t)
        base = tmp / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
                       check=True, capture_output=True)
        try:
            frameworks = args.frameworks or _frameworks(base)
            print(f"profile {args.profile}, -n {args.n}, frameworks {frameworks}; base {args.base}")
            walls: dict[str, list[float]] = {"base": [], "this": []}
            for k in range(args.repeat):
                for name, tree in (("base", base), ("this", ROOT)):
                    r = _run(tree, base, args, frameworks, tmp)
                    walls[name].append(float(r["wall"]))  # type: ignore[arg-type]
                    print(f"  {k + 1} {name:4}: {r['wall']:.1f} s, {r['checks']} checks, {r['verdict']}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    mb, mt = statistics.mean(walls["base"]), statistics.mean(walls["this"])
    print(f"mean: base {mb:.1f} s, this tree {mt:.1f} s, ratio {mt / mb:.2f} ({100 * (1 - mt / mb):.0f}% lower)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
