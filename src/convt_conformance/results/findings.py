"""Distinct findings of a run: the records worth a bug report, grouped, smallest case first.

Pure functions over results records (README "Results file"): CheckRecords, or record dicts
(taken as records, :func:`convt_conformance.model.record.as_records`); nothing here runs a check.

A record is a *finding* when its status is unexpected (:attr:`Status.unexpected`: fail, error,
accepted-invalid, crash, xpass) or when it is a known disagreement that still fails (its
``underlying_status`` is a failing one: the ``xfail`` records). Findings are grouped by
``(adapter, API family, status, kind, known reason)`` where ``kind`` is the record's
``failure_kind`` (:class:`convt_conformance.model.status.FailureKind`: value, shape, nonfinite,
timeout ...) or else its underlying status
(``accepted-invalid``, ``error``, ``crash`` ...). Unexpected groups come first, then by status
severity, framework display order and API.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from convt_conformance.adapters.registry import display_order
from convt_conformance.model.check_id import Check
from convt_conformance.model.record import CheckRecord, as_records
from convt_conformance.model.status import FailureKind, Status, status_of

DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")


@cache  # a run has a few hundred API labels and asks per record
def api_family(api: str) -> str:
    """Rank-specific API names folded into one: conv_transpose2d -> conv_transposeNd."""
    return re.sub(r"([a-z_])[123]d", r"\1Nd", api)


def is_finding(rec: Mapping[str, Any]) -> bool:
    """Unexpected, or a known disagreement whose check still fails (xfail)."""
    if status_of(rec["status"]).unexpected:
        return True
    under = rec.get("underlying_status")
    return isinstance(under, str) and bool(under) and status_of(under).failing


def kind_of(rec: Mapping[str, Any]) -> str:
    """What went wrong (:attr:`CheckRecord.kind`, as its value): the failure kind (value, shape,
    nonfinite, timeout) or the status behind it."""
    kind = rec.get("failure_kind") or rec.get("underlying_status") or rec["status"]
    return str(kind.value if isinstance(kind, Status | FailureKind) else kind)


def check_id_of(rec: Mapping[str, Any]) -> str:
    return Check.of(rec).id


def _prod(shape: Any) -> int:
    if not isinstance(shape, list | tuple):
        return 0
    return int(math.prod(int(s) for s in shape))


def case_size(rec: Mapping[str, Any]) -> tuple[int, int]:
    """(output elements, input elements) of the record's case: what "smallest case" orders by.

    Unknown sizes (a crash record without params) sort last."""
    params = rec.get("params") or {}
    out = _prod(rec.get("shape") or rec.get("expected_shape"))
    inp = _prod(params.get("input_shape"))
    big = 1 << 62
    return (out if out or params else big, inp if params else big)


def _dtype_key(d: str) -> int:
    return DTYPE_ORDER.index(d) if d in DTYPE_ORDER else len(DTYPE_ORDER)


def _is_finding(rec: CheckRecord) -> bool:
    return rec.status.unexpected or (rec.underlying_status is not None and rec.underlying_status.failing)


def group_findings(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct findings, unexpected first; each a dict with adapter, api (family), apis,
    status (a Status), kind (its value), reason, issue, dtypes, devices, count (checks), cases,
    smallest (record), smallest_id, unexpected, records (all covered records: CheckRecords, the
    very objects given when those are)."""
    groups: dict[tuple[str, str, Status, str, str], list[CheckRecord]] = defaultdict(list)
    for r in as_records(results):
        if _is_finding(r):
            reason = (r.known or {}).get("reason") or ""
            groups[(r.adapter, api_family(r.api), r.status, r.kind.value, reason)].append(r)
    out: list[dict[str, Any]] = []
    for (adapter, family, status, kind, reason), recs in groups.items():
        smallest = min(recs, key=lambda r: (*case_size(r), _dtype_key(r.dtype), r.case))
        out.append({
            "adapter": adapter, "api": family, "apis": sorted({r.api for r in recs}),
            "status": status, "kind": kind, "reason": reason,
            "issue": (smallest.known or {}).get("issue") or "",
            "dtypes": sorted({r.dtype for r in recs}, key=_dtype_key),
            "devices": sorted({r.device for r in recs}),
            "count": len(recs), "cases": len({r.case for r in recs}),
            "smallest": smallest, "smallest_id": smallest.check.id,
            "unexpected": status.unexpected, "records": recs,
        })
    out.sort(key=lambda f: (not f["unexpected"], f["status"].severity,
                            display_order(f["adapter"]), f["api"], f["kind"], -f["count"]))
    return out


def framework_dtype_summary(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of every status per (framework, dtype): ``{"dtypes": [...], "rows": [{"adapter",
    "cells": [{"dtype", "counts": [(status, n)] in severity order, "worst", "total"} | None]}]}``."""
    by: dict[tuple[str, str], Counter[Status]] = defaultdict(Counter)
    for r in as_records(results):
        by[(r.adapter, r.dtype)][r.status] += 1
    dtypes = sorted({d for _, d in by}, key=_dtype_key)
    rows = []
    for adapter in sorted({a for a, _ in by}, key=display_order):
        cells: list[dict[str, Any] | None] = []
        for d in dtypes:
            cnt = by.get((adapter, d))
            if not cnt:
                cells.append(None)
                continue
            ordered = sorted(cnt.items(), key=lambda kv: kv[0].severity)
            cells.append({"dtype": d, "counts": ordered, "worst": ordered[0][0], "total": sum(cnt.values())})
        rows.append({"adapter": adapter, "cells": cells})
    return {"dtypes": dtypes, "rows": rows}


def finding_line(f: dict[str, Any]) -> str:
    """One line of plain text for a finding (markdown summary, CLI)."""
    where = f"{f['adapter']}.{f['api']}"
    cover = f"{f['count']} check(s) in {f['cases']} case(s); {', '.join(f['dtypes'])} on {', '.join(f['devices'])}"
    head = f"{where}: {f['status']}" + (f" ({f['kind']})" if f["kind"] != f["status"] else "")
    return f"{head}: {cover}; smallest: {f['smallest_id']}"

