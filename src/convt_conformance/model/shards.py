"""Checks that results files are the shards of one run before ``conformance merge`` joins them:
the same selection (profile, frameworks, cases: one digest of every selected check id), the
same environment, disjoint, and together complete; a missing shard is named."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any


def _env_identity(p: dict[str, Any]) -> tuple[Any, ...]:
    env = p.get("environment") or {}
    return (tuple(sorted((env.get("frameworks") or {}).items())), env.get("precision"), env.get("python"),
            env.get("platform"))


def _missing(count: int, seen: Iterable[int], listed: int = 10) -> tuple[int, list[int]]:
    """How many of shards 1..``count`` are not in ``seen``, and the first ``listed`` of them: time
    and memory in proportion to ``seen``, whatever ``count`` (a file may claim a billion shards)."""
    present = {k for k in seen if 1 <= k <= count}
    return count - len(present), list(islice((k for k in range(1, count + 1) if k not in present), listed))


def shard_problems(payloads: list[dict[str, Any]], names: list[str]) -> list[str]:
    """Why these files are not the complete, consistent set of shards of one run (empty: they
    are, or none of them is a shard)."""
    sharded = [(p, n) for p, n in zip(payloads, names) if (p.get("selection") or {}).get("shard")]
    if not sharded:
        return []
    if len(sharded) != len(payloads):
        plain = [n for p, n in zip(payloads, names) if not (p.get("selection") or {}).get("shard")]
        return [f"{', '.join(plain)}: not a shard, but other inputs are; merge shards of one run only"]
    problems = []
    first, first_name = sharded[0]
    sel0 = first["selection"]
    count = sel0["shard"]["count"]
    seen: dict[int, str] = {}
    for p, n in sharded:
        sel = p["selection"]
        for key in ("digest", "profile", "selected_checks", "frameworks", "tags", "dtypes", "device"):
            if sel.get(key) != sel0.get(key):
                problems.append(f"{n}: selection {key} {sel.get(key)!r} differs from {first_name}'s "
                                f"{sel0.get(key)!r}: not shards of the same run")
        if sel["shard"]["count"] != count:
            problems.append(f"{n}: shard {sel['shard']['index']}/{sel['shard']['count']}, but {first_name} "
                            f"is one of {count}")
        if _env_identity(p) != _env_identity(first):
            problems.append(f"{n}: environment (framework versions, precision, python, platform) differs "
                            f"from {first_name}'s")
        idx = sel["shard"]["index"]
        if idx in seen:
            problems.append(f"{n}: shard {idx}/{count} is also given as {seen[idx]}")
        seen[idx] = n
        if not p.get("complete"):
            problems.append(f"{n}: shard {idx}/{count} is incomplete")
    n_missing, missing = _missing(count, seen)
    if n_missing:
        more = f" and {n_missing - len(missing)} more" if n_missing > len(missing) else ""
        problems.append(f"missing shard(s) {', '.join(f'{k}/{count}' for k in missing)}{more}")
    total = sum(len(p["results"]) for p, _ in sharded)
    if not missing and not problems and total != sel0.get("selected_checks"):
        problems.append(f"the shards hold {total} checks, the run selected {sel0.get('selected_checks')}")
    return problems
