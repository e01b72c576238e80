"""Merge results files of disjoint runs (e.g. one per framework, each from its own venv with its
own CUDA major) into one results file; a check present in two inputs is an error."""

from __future__ import annotations

from typing import Any

from convt_conformance.model.check_id import Check
from convt_conformance.model.record import CheckRecord, as_records
from convt_conformance.results.store import SCHEMA


class MergeError(ValueError):
    pass


def merge_results(payloads: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One payload holding every input's results (CheckRecords, ordered by check); environment
    fields are unioned."""
    if not payloads:
        raise MergeError("nothing to merge")
    from convt_conformance.model.shards import shard_problems

    problems = shard_problems(payloads, names)
    if problems:
        raise MergeError("; ".join(problems))
    seen: dict[Check, str] = {}
    results: list[CheckRecord] = []
    for p, name in zip(payloads, names):
        for r in as_records(p["results"]):
            k = r.check
            if k in seen:
                raise MergeError(f"{name}: check {tuple(k)} is also in {seen[k]}; merge disjoint runs only")
            seen[k] = name
            results.append(r)
    envs = [p.get("environment", {}) for p in payloads]
    precisions = {e.get("precision") for e in envs}
    if len(precisions) > 1:
        raise MergeError(f"runs of different precision modes cannot be merged: {sorted(map(str, precisions))}")
    env = dict(envs[0])
    env["frameworks"] = {k: v for e in envs for k, v in (e.get("frameworks") or {}).items() if v}
    # a framework one input could not run stays unavailable unless another input ran its checks
    # (installed is not enough: one that died while setting up has a version too)
    ran = {r.adapter for r in results}
    env["unavailable"] = {k: v for e in envs for k, v in (e.get("unavailable") or {}).items() if k not in ran}
    env["devices"] = sorted({d for e in envs for d in e.get("devices") or []})
    for key in ("framework_devices", "framework_settings"):
        env[key] = {k: v for e in envs for k, v in (e.get(key) or {}).items()}
    env["gpus"] = [g for g in {repr(g): g for e in envs for g in e.get("gpus") or []}.values()]
    return {
        "schema": SCHEMA, "complete": all(p.get("complete") for p in payloads),
        "started": min(p.get("started", "") for p in payloads),
        "finished": max(p.get("finished", "") for p in payloads),
        "duration_s": sum(p.get("duration_s") or 0 for p in payloads),
        "command": " + ".join(p.get("command", "") for p in payloads),
        "environment": env, "merged_from": names,
        "selection": _merged_selection(payloads),
        "problems": sorted({x for p in payloads for x in p.get("problems", [])}),
        "convention_probes": [row for p in payloads for row in p.get("convention_probes") or []],
        "results": sorted(results, key=lambda r: r.check),
    }


def _merged_selection(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """The selection of the merged run: the shards' common one without the shard, or the first
    input's for merges of disjoint runs (e.g. one per framework), naming every framework any
    input named in ``--frameworks`` (the verdict holds each of them to having run)."""
    sel = dict(payloads[0].get("selection") or {})
    if sel.get("shard"):
        sel["shard"] = None
    named = [f for p in payloads for f in (p.get("selection") or {}).get("requested_frameworks") or []]
    if named:
        sel["requested_frameworks"] = list(dict.fromkeys(named))
    return sel
