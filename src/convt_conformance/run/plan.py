"""``conformance plan``: what a profile runs, per API column, without running anything: checks
selected of those collected, the estimated cold time, and which feature x dtype pairs each
column covers (the coverage README states). Builds the same (case, adapter, api, device,
dtype) list the pytest plugin collects, on the CPU, and applies the same selection. Also the
profile a run uses (:func:`load_run_profile`: the built-in profiles with the frameworks' parts,
which the loading stage cannot ask the adapters for)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from convt_conformance.loading.cases import load_cases
from convt_conformance.loading.features import FEATURES
from convt_conformance.loading.profiles import (
    FrameworkPart,
    PlannedItem,
    Profile,
    column,
    load_profile,
    select,
    shows_pairs,
    shows_rows,
)
from convt_conformance.model.check_id import Check


def framework_parts() -> list[FrameworkPart]:
    """Every registered framework's part of the built-in profiles (its adapter's ``profile_file``),
    in the registry's order; a framework whose adapter cannot be loaded has none (its checks
    cannot run)."""
    from convt_conformance.adapters.registry import AdapterLoadError, adapter_class, entries

    out = []
    for name in entries():
        try:
            path = adapter_class(name).profile_file()
        except AdapterLoadError:
            continue
        if path is not None:
            out.append(FrameworkPart(name, path))
    return out


def load_run_profile(name: str, path: str | Path | None = None) -> Profile:
    """The profile a run uses: ``name`` of the built-in profiles with every registered framework's
    part, or of ``path`` (``--profiles-file``), which is complete in itself."""
    return load_profile(name, path, frameworks=() if path else framework_parts())


def planned_checks(case_paths: list[str], frameworks: list[str]) -> tuple[list[PlannedItem], list[str]]:
    """Every CPU check the run would collect for these frameworks (as the plugin plans them before
    any item exists), and the case-file problems."""
    from convt_conformance.adapters.registry import get_adapter

    loaded = load_cases(case_paths)
    adapters = [get_adapter(f) for f in frameworks]
    out: list[PlannedItem] = []
    for case in loaded.cases:
        for a in adapters:
            for api in a.apis:
                if a.applies(case, api):
                    label = a.api_label(api, case.rank)
                    for dt in case.dtypes:
                        check = Check(case.id, a.name, label, "cpu", dt)
                        out.append(PlannedItem(case, a.name, label, "cpu", dt, check_id=check.id, api=api))
    return out, [str(p) for p in loaded.problems]


def plan_table(profile: Profile, checks: list[PlannedItem]) -> list[dict[str, Any]]:
    """Per column: collected, selected, estimated seconds, feature x dtype pairs covered / present,
    and the rows (each feature, each dtype) covered / present."""
    chosen = select(profile, checks)
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"collected": 0, "selected": 0, "present": set(),
                                                           "covered": set(), "rows_present": set(),
                                                           "rows_covered": set()})
    for c in checks:
        r = rows[column(c)]
        r["collected"] += 1
        r["present"] |= shows_pairs(c)
        r["rows_present"] |= shows_rows(c)
    for c in chosen:
        r = rows[column(c)]
        r["selected"] += 1
        r["covered"] |= shows_pairs(c)
        r["rows_covered"] |= shows_rows(c)
    out = []
    for col, r in rows.items():
        # the rows: every feature and every dtype on its own (what `cover: rows` keeps), as "bias", "dtype float16"
        row_p, row_c = ({" ".join(x for x in row if x) for row in r[k]} for k in ("rows_present", "rows_covered"))
        out.append({"column": col, "collected": r["collected"], "selected": r["selected"],
                    "seconds": r["selected"] * profile.cost(col),
                    "covered": len(r["covered"]), "present": len(r["present"]),
                    "uncovered": sorted(f"{f}/{d}" for f, d in r["present"] - r["covered"]),
                    "rows_covered": len(row_c), "rows_present": len(row_p), "rows_uncovered": sorted(row_p - row_c)})
    return out


def format_plan(profile: Profile, table: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`plan_table` with totals."""
    lines = [f"profile {profile.name}: {profile.description}".strip(),
             f"{'column':<46} {'selected':>9} {'of':>7} {'est. s':>8}  rows (feature, dtype)  feature x dtype"]
    for r in sorted(table, key=lambda r: r["column"]):
        lines.append(f"{r['column']:<46} {r['selected']:>9} {r['collected']:>7} {r['seconds']:>8.1f}  "
                     f"{r['rows_covered']:>4}/{r['rows_present']:<4}"
                     + (f" (missing {', '.join(r['rows_uncovered'][:3])})" if r["rows_uncovered"] else "")
                     + f"  {r['covered']}/{r['present']}" + (f" (missing {', '.join(r['uncovered'][:4])}"
                                                         f"{'...' if len(r['uncovered']) > 4 else ''})"
                                                         if r["uncovered"] else ""))
    sel = sum(r["selected"] for r in table)
    est = sum(r["seconds"] for r in table)
    lines.append(f"{'total':<46} {sel:>9} {sum(r['collected'] for r in table):>7} {est:>8.1f}  "
                 f"(estimated check seconds, cold; about {est / 2:.0f} s of wall time on 2 workers)")
    lines.append("features: " + ", ".join(FEATURES))
    return "\n".join(lines)
