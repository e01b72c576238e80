"""Mutation score of the suite: how many planted-bug mutants its cases kill, and by how many
distinct cases each; whether any correct variant is flagged.

The mutants are the ``mutant`` adapter's APIs (``mutation/site/convt_mutants``; ``bug_*`` planted
bugs, ``ok_*`` correct variants). A bug mutant is killed by a case when a check of it on that case
(any dtype) fails, errors, crashes or accepts an invalid case; a correct variant is flagged by
any such check. Goal: every bug mutant killed by >= 3 distinct cases (one lucky case is thin
coverage) and no correct variant flagged.

Two sources:

- default: in-process, exactly what the run does per check (``convt_conformance.checking.check.run_check`` on
  CPU, strict precision, no known disagreements) over the loaded cases: NumPy only, no pytest;
- ``--from-results FILE``: the records of ``conformance run --frameworks mutant`` (adapter
  ``mutant``), e.g. ``PYTHONPATH=.:mutation/site python -m convt_conformance run --frameworks mutant``.

Exit 0 when the goal is met, 1 otherwise (2 on a usage or case-file problem).
Usage: ``PYTHONPATH=.:mutation/site python scripts/mutation_score.py [--cases PATH ...]
[--tags a,b] [--dtypes ...] [--results OUT.json] [--from-results FILE] [--json OUT]
[--min-cases 3]``
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "mutation" / "site"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from convt_mutants.adapter import MutantAdapter  # noqa: E402
from convt_mutants.catalogue import MUTANTS  # noqa: E402

from convt_conformance.checking import check as check_mod  # noqa: E402
from convt_conformance.library import CASES_DIR  # noqa: E402
from convt_conformance.loading.cases import load_cases, select  # noqa: E402

KILLING = ("fail", "error", "accepted-invalid", "crash")
MIN_CASES = 3


def _memoised_reference():
    """``reference_and_magnitude`` once per (case, dtype) instead of once per check: the
    oracle's inputs depend on nothing else, and every mutant is checked on the same ones."""
    original = check_mod.reference_and_magnitude
    cache: dict = {}

    @functools.wraps(original)
    def cached(case, x, w, b):
        key = (case.id, x.tobytes(), w.tobytes(), None if b is None else b.tobytes())
        if key not in cache:
            cache[key] = original(case, x, w, b)
        return cache[key]
    return cached


def run_in_process(case_paths: list[str], tags: list[str], dtypes: list[str]) -> list[dict]:
    """One record per (case, dtype, mutant) via ``run_check`` (CPU, strict, no known list)."""
    loaded = load_cases(case_paths)
    if loaded.problems:
        for pr in loaded.problems:
            print(f"case-file problem: {pr}", file=sys.stderr)
        raise SystemExit(2)
    adapter = MutantAdapter()
    check_mod.reference_and_magnitude = _memoised_reference()
    records = []
    for case in select(loaded.cases, tags):
        for dtype in case.dtypes:
            if dtypes and dtype not in dtypes:
                continue
            for api in adapter.apis:
                rec = check_mod.run_check(case, adapter, api, "cpu", dtype, "strict", [])
                records.append({k: rec.get(k) for k in ("case", "adapter", "api", "dtype", "status",
                                                        "failure_kind", "message")})
    return records


def read_results(path: str) -> list[dict]:
    """The ``mutant`` adapter's records of a results file (``xfail`` counts as its underlying status)."""
    from convt_conformance.results.store import read_results as read_file  # every schema, records expanded

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "schema" in data:  # a `conformance run` results file (compact): its records expanded
        data = read_file(path)
    out = []
    for r in data.get("results", []):
        if r.get("adapter") != "mutant":
            continue
        status = r.get("underlying_status") or r.get("status")
        out.append({**r, "status": status})
    return out


def score(records: list[dict], min_cases: int = MIN_CASES) -> tuple[list[dict], dict]:
    """Per mutant: kind, killing (or flagging) case ids; and the summary counts."""
    killers: dict[str, set[str]] = defaultdict(set)
    checks: dict[str, int] = defaultdict(int)
    for r in records:
        checks[r["api"]] += 1
        if r["status"] in KILLING:
            killers[r["api"]].add(r["case"])
    rows = []
    for m in MUTANTS:
        ids = sorted(killers.get(m.name, ()))
        rows.append({"mutant": m.name, "kind": m.kind, "family": m.family, "checks": checks.get(m.name, 0),
                     "killed": bool(ids), "n_cases": len(ids), "cases": ids})
    bugs = [r for r in rows if r["kind"] == "bug"]
    oks = [r for r in rows if r["kind"] == "correct"]
    summary = {"bugs": len(bugs), "killed": sum(r["killed"] for r in bugs),
               "killed_min": sum(r["n_cases"] >= min_cases for r in bugs),
               "correct": len(oks), "flagged": sum(r["killed"] for r in oks), "min_cases": min_cases,
               "checks": len(records)}
    return rows, summary


def print_table(rows: list[dict], summary: dict, show: int = 4) -> None:
    head = f"{'mutant':32} {'kind':8} {'family':26} {'checks':>6} {'killed':7} {'cases':>5}  first killing cases"
    print(head)
    print("-" * len(head))
    for r in rows:
        verdict = ("FLAGGED" if r["killed"] else "ok") if r["kind"] == "correct" else ("yes" if r["killed"] else "NO")
        if r["kind"] == "bug" and r["killed"] and r["n_cases"] < summary["min_cases"]:
            verdict = "thin"
        more = f" (+{r['n_cases'] - show})" if r["n_cases"] > show else ""
        print(f"{r['mutant']:32} {r['kind']:8} {r['family']:26} {r['checks']:6} {verdict:7} {r['n_cases']:5}  "
              f"{', '.join(r['cases'][:show])}{more}")
    s = summary
    print(f"\nkilled {s['killed']}/{s['bugs']} bug mutants (each by >= {s['min_cases']} distinct cases: "
          f"{s['killed_min']}/{s['bugs']}); correct variants flagged: {s['flagged']}/{s['correct']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=[str(CASES_DIR)], help="case files or folders")
    ap.add_argument("--tags", default="", help="comma-separated tags (cases having any)")
    ap.add_argument("--dtypes", default="", help="comma-separated dtypes (default: each case's own)")
    ap.add_argument("--from-results", metavar="FILE", help="score a results file of `conformance run "
                    "--frameworks mutant` instead of running in-process")
    ap.add_argument("--results", metavar="OUT", help="write the in-process records (JSON) here")
    ap.add_argument("--json", metavar="OUT", help="write the table (rows) and the summary as JSON here")
    ap.add_argument("--min-cases", type=int, default=MIN_CASES, help="distinct killing cases wanted per bug")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.from_results:
        records = read_results(args.from_results)
        if not records:
            print(f"{args.from_results}: no records of the 'mutant' adapter", file=sys.stderr)
            return 2
    else:
        records = run_in_process(args.cases, [t for t in args.tags.split(",") if t],
                                 [d for d in args.dtypes.split(",") if d])
        if args.results:
            Path(args.results).write_text(json.dumps({"results": records}, indent=0), encoding="utf-8")
    rows, summary = score(records, args.min_cases)
    print_table(rows, summary)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1), encoding="utf-8")
    print(f"{summary['checks']} checks in {time.perf_counter() - t0:.1f} s")
    ok = summary["killed_min"] == summary["bugs"] and summary["flagged"] == 0
    if summary["flagged"]:
        for r in rows:
            if r["kind"] == "correct" and r["killed"]:
                bad = [x for x in records if x["api"] == r["mutant"] and x["status"] in KILLING][:3]
                for x in bad:
                    print(f"FLAGGED {r['mutant']} on {x['case']} {x['dtype']}: {x['status']} "
                          f"{x.get('failure_kind') or ''} {str(x.get('message'))[:200]}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
