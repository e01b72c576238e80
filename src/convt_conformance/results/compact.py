"""The compact form of a results file, schemas ``conformance-results/2`` and ``/3``.

Version 1 repeated in every record what belongs to its case (file, tags, source, params,
expected shape), to the run (framework version, precision) or to many records at once (the
native call description, the tolerance model): 2.3 KB a check. Version 2 stores each of those
once (``cases``, ``versions``, ``native_calls``, ``tolerances``; records refer to them by key or
index) and leaves out fields that are empty, so a record holds only what is its own. Readers
never see the compact form: :func:`expand` restores version-1 records exactly, so ``report``,
``compare`` and ``merge`` read both versions alike. Both work on plain record dicts (the file's
JSON values); :func:`compact` takes a payload of CheckRecords too (their :meth:`as_dict`).

Version 3 (written since 2026-12-01) also stores each distinct ``message`` and ``known`` (the
matched entry: its reason, issue and index) once, in ``messages`` and ``knowns``: a default run's
7,464 messages have 758 distinct texts and its 475 known disagreements name a few dozen entries, at
~84 and ~19 B a check of the 648 B a check version 2 took. Version-2 files have neither table
(their messages and entries stand in the records) and are read as before.
"""

from __future__ import annotations

import json
from typing import Any

from convt_conformance.model.record import CheckRecord

COMPACT_SCHEMA = "conformance-results/3"
COMPACT_SCHEMAS = ("conformance-results/2", COMPACT_SCHEMA)  # what expand() reads
# (record field, table): values stored once in the table, the record holding the index
TABLES = (("native_call", "native_calls"), ("tolerance", "tolerances"), ("known", "knowns"), ("message", "messages"))
CASE_FIELDS = ("file", "tags", "source", "description", "params", "expected_error", "expected_shape")
# record fields (version 1) and the value an absent field has
DEFAULTS: dict[str, Any] = {
    "status": None, "failure_kind": None, "shape": None, "max_abs_err": None, "max_rel_err": None,
    "max_ulp": None, "mismatched": None, "tolerance": None, "message": "", "native_call": None, "known": None,
    "seconds": None, "device": "cpu",
}


def pass_message(r: dict[str, Any]) -> str:
    """The message convt_conformance.checking.compare gives a passing comparison (derivable, so not stored)."""
    return f"max abs diff {r['max_abs_err']:.3g}, max ULP {r['max_ulp']}"


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def compact(payload: dict[str, Any]) -> dict[str, Any]:
    """The version-3 document of a version-1 payload (which is not modified)."""
    cases: dict[str, dict[str, Any]] = {}
    versions: dict[str, Any] = {}
    tables: dict[str, list[Any]] = {table: [] for _, table in TABLES}
    index: dict[str, dict[str, int]] = {table: {} for _, table in TABLES}
    records = []
    for rec in payload.get("results", []):
        r = rec.as_dict() if isinstance(rec, CheckRecord) else dict(rec)
        cid = r.get("case")
        if cid is not None and cid not in cases and any(f in r for f in CASE_FIELDS):
            cases[cid] = {f: r[f] for f in CASE_FIELDS if f in r}
        for f in CASE_FIELDS:
            if f in r and cid in cases and cases[cid].get(f) == r[f]:
                del r[f]
        if r.get("framework_version") is not None:
            ad = r["adapter"]
            if versions.setdefault(ad, r["framework_version"]) == r["framework_version"]:
                del r["framework_version"]
        if r.get("precision") == payload.get("environment", {}).get("precision"):
            r.pop("precision", None)
        r.pop("nodeid", None)
        if isinstance(r.get("tolerance"), dict) and "max" in r["tolerance"]:
            tol = dict(r["tolerance"])
            r["tolerance_max"] = tol.pop("max")  # per check; the model's parameters are shared
            r["tolerance"] = tol
        if r.get("status") == "pass":
            if isinstance(r.get("max_abs_err"), float) and r.get("message") == pass_message(r):
                del r["message"]
            if r.get("mismatched") == 0:
                r["mismatched"] = None
        if r.get("native_dtype") == r.get("dtype"):
            del r["native_dtype"]
        for field, table in TABLES:
            if isinstance(r.get(field), dict) or (isinstance(r.get(field), str) and r[field]):
                k = _key(r[field])
                if k not in index[table]:
                    index[table][k] = len(tables[table])
                    tables[table].append(r[field])
                r[field] = index[table][k]
        if isinstance(r.get("seconds"), float):
            r["seconds"] = round(r["seconds"], 5)
        for f, default in DEFAULTS.items():
            if f in r and r[f] == default and f != "status":
                del r[f]
        records.append(r)
    out = {k: v for k, v in payload.items() if k != "results"}
    out.update(schema=COMPACT_SCHEMA, cases=cases, versions=versions, **tables, results=records)
    return out


def expand(data: dict[str, Any]) -> dict[str, Any]:
    """The version-1 payload of a version-2 document (records with every field restored)."""
    cases = data.get("cases") or {}
    versions = data.get("versions") or {}
    tables = {field: data.get(table) or [] for field, table in TABLES}
    precision = (data.get("environment") or {}).get("precision")
    results = []
    for r in data.get("results", []):
        full = {**DEFAULTS, **(cases.get(r.get("case")) or {}), **r}
        full.setdefault("framework_version", versions.get(r.get("adapter")))
        full.setdefault("precision", precision)
        for field, table in tables.items():
            if isinstance(full.get(field), int) and not isinstance(full.get(field), bool):
                value = table[full[field]]
                full[field] = dict(value) if isinstance(value, dict) else value
        if "tolerance_max" in full:
            full["tolerance"] = {**(full["tolerance"] or {}), "max": full.pop("tolerance_max")}
        if full["status"] == "pass":
            if "message" not in r and isinstance(full.get("max_abs_err"), float):
                full["message"] = pass_message(full)
            if full.get("mismatched") is None:
                full["mismatched"] = 0
        if "native_dtype" not in r and full.get("tolerance") is not None:  # set wherever a comparison ran
            full["native_dtype"] = full["dtype"]
        results.append(full)
    out = {k: v for k, v in data.items() if k not in ("cases", "versions", *(t for _, t in TABLES))}
    out["results"] = results
    out["stored_schema"] = data.get("schema")
    return out
