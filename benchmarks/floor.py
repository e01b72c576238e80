"""Benchmark: the harness beside its floor, per framework.

    python benchmarks/floor.py [--profile default] [--frameworks numpy,torch,tensorflow,jax] [-n 2] [--together]

For each framework, in this session:
- harness, cold and warm: ``conformance run --frameworks FW --profile P -n N --no-probes`` (cold: an
  empty JAX compilation cache; warm: the same command again, cache kept), wall time;
- floor, cold and warm: the same native calls without the harness: N fresh processes, each
  importing the framework, configuring it like the adapter, and calling ``adapter.run`` on its
  share of the profile's checks (the same cost-balanced split as ``--shard``): wall time from
  their start to the end of the slowest one's pass over its calls, less the time that process
  spent planning and generating inputs (the harness's work); warm: the same with the JAX
  compilation cache kept from the cold floor (as the warm harness keeps its own);
and prints harness / floor per framework (the goal: <= 1.2x cold, <= 1.5x warm), or with
``--together`` once for all of them run together (the profile's whole run: one harness run of
every framework against floor processes that import them all).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from convt_conformance.cli.run import worker_threads  # noqa: E402
from convt_conformance.library import CASES_DIR, KNOWN_FILE  # noqa: E402


def _floor_worker(frameworks: str, profile: str, index: int, count: int) -> None:
    """One floor process over the comma-separated ``frameworks``: prints {"pass_end": wall-clock
    time.time() at the end of its pass over its calls, "inputs": s spent planning the checks and
    generating their inputs before that (the harness's work, not the floor's), "checks": n}."""
    from convt_conformance.adapters.registry import get_adapter
    from convt_conformance.checking.cotangent import cotangent
    from convt_conformance.loading.profiles import select, shard_of
    from convt_conformance.model.apis import gradient_quantity
    from convt_conformance.model.env_facts import note_adapter
    from convt_conformance.run.plan import load_run_profile, planned_checks

    t_plan0 = time.perf_counter()
    prof = load_run_profile(profile)
    checks, _ = planned_checks([str(CASES_DIR)], frameworks.split(","))
    chosen = select(prof, checks)
    ids = [c.check_id for c in chosen]
    mine = [c for c, s in zip(chosen, shard_of(prof, chosen, count, ids)) if s == index]
    t_plan = time.perf_counter() - t_plan0
    adapters = {name: get_adapter(name) for name in frameworks.split(",")}
    from convt_conformance.loading.known import load_known
    from convt_conformance.run.isolate import expected_to_crash

    known, _ = load_known(KNOWN_FILE)
    for a in adapters.values():  # the import (timed below); a crash entry's `when:` may need the adapter's facts
        a.unavailable_reason()
        a.configure("strict")
        note_adapter(a)
    # a known crash would kill this process: the harness runs it in a child of its own, the floor skips it
    mine = [c for c in mine if not expected_to_crash(known, c.case, adapter=c.adapter_name, api=c.label,
                                                     device=c.device, dtype=c.dtype, precision="strict")]
    api_of = {(n, a.api_label(api, c.case.rank)): api for n, a in adapters.items() for c in mine for api in a.apis}
    setup = time.perf_counter()
    work = []
    for c in mine:
        a, api = adapters[c.adapter_name], api_of[(c.adapter_name, c.label)]
        if a.applies(c.case, api) and a.supports(c.case, api, c.device, c.dtype) is None:
            # a gradient column's call takes the case's seeded cotangent (convt_conformance/checking/cotangent.py)
            g = cotangent(c.case, c.dtype)[0] if gradient_quantity(api) and not c.case.expected_error else None
            work.append((a, c, api, *c.case.tensors(c.dtype), g))
    t_inputs = time.perf_counter() - setup
    for a, c, api, x, w, b, g in work:
        try:
            a.run(c.case, api, c.device, c.dtype, x, w, b, **({"cotangent": g} if g is not None else {}))
        except Exception:
            pass  # invalid cases are rejected: the call is the floor either way
    print(json.dumps({"pass_end": time.time(), "inputs": t_plan + t_inputs, "checks": len(work),
                      "selected": len(mine)}))


def _floor(framework: str, profile: str, n: int, cache: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CONFORMANCE_JAX_CACHE": cache, "TF_CPP_MIN_LOG_LEVEL": "2"}
    threads = worker_threads(str(n), os.cpu_count() or 1)  # the threads the harness's workers get
    if threads is not None and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, __file__, "--floor-worker", framework, profile, str(k), str(n)],
                              env=env, stdout=subprocess.PIPE, text=True) for k in range(1, n + 1)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    # from the processes' start to the end of the slowest one's pass, its planning and input
    # generation left out (the harness's work; the floor is the native calls, imports, process starts)
    cold = max(o["pass_end"] - t0 - o["inputs"] for o in outs)
    return {"cold": cold, "checks": sum(o["checks"] for o in outs)}


def _harness(framework: str, profile: str, n: int, cache: str, results: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CONFORMANCE_JAX_CACHE": cache}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--frameworks", framework, "--profile", profile,
                    "-n", str(n), "--no-probes", "--results", results], cwd=ROOT, env=env,
                   capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-worker":
        _floor_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="default")
    ap.add_argument("--frameworks", default="numpy,torch,tensorflow,jax,onnx,keras")
    ap.add_argument("-n", type=int, default=2)
    ap.add_argument("--together", action="store_true",
                    help="one line for the frameworks run together (the profile's whole run), not one each")
    args = ap.parse_args()
    print(f"{'framework':<12} {'harness cold':>12} {'floor cold':>10} {'ratio':>6} {'harness warm':>12} "
          f"{'floor warm':>10} {'ratio':>6}  checks")
    for fw in [args.frameworks] if args.together else args.frameworks.split(","):
        with tempfile.TemporaryDirectory() as cache_h, tempfile.TemporaryDirectory() as cache_f:
            res = str(Path(cache_h) / "results.json")
            h_cold = _harness(fw, args.profile, args.n, cache_h, res)
            h_warm = _harness(fw, args.profile, args.n, cache_h, res)
            fl = _floor(fw, args.profile, args.n, cache_f)
            # the warm floor: the calls alone (compiled), per worker in parallel, + the process start
            # the warm harness also pays (imports); measured as a second cold floor with a warm cache
            fl_warm = _floor(fw, args.profile, args.n, cache_f)["cold"]
        print(f"{'all' if args.together else fw:<12} {h_cold:>11.1f}s {fl['cold']:>9.1f}s {h_cold / fl['cold']:>6.2f} {h_warm:>11.1f}s "
              f"{fl_warm:>9.1f}s {h_warm / fl_warm:>6.2f}  {fl['checks']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
