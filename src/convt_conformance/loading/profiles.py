"""Run profiles: which checks of each API column run (``convt_conformance/loading/profiles.yaml``, data),
and the deterministic cost-balanced split of a run into shards.

A *check* here is any object with ``case`` (a :class:`convt_conformance.loading.cases.Case`), ``adapter_name``,
``label`` (the API label as in check ids), ``device`` and ``dtype`` (the pytest items are).
Selection is a pure function of the set of checks, so every xdist worker and every shard
computes the same plan.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import json
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from convt_conformance.loading.cases import Case
from convt_conformance.loading.features import case_features, stratum
from convt_conformance.loading.yaml_io import load_yaml

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
DEFAULT_PROFILE = "default"


class Check(Protocol):
    @property
    def case(self) -> Case: ...
    @property
    def adapter_name(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...


class ProfileError(ValueError):
    """A profiles file or a profile name that cannot be used (says which and why)."""


@dataclass(frozen=True)
class Rule:
    columns: str
    select: Any  # "all", "none" or a mapping (see profiles.yaml)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    rules: tuple[Rule, ...]
    costs: tuple[tuple[str, float], ...]
    #: estimated seconds to set an affinity group up in a process (convt_conformance/run/affinity.py), by
    #: group name (``*``: any other group); the file's ``setup_costs``
    setup_costs: tuple[tuple[str, float], ...] = ()

    def rule_for(self, column: str) -> Rule:
        for r in self.rules:
            if fnmatch.fnmatchcase(column, r.columns):
                return r
        return Rule("*", "all")

    def cost(self, column: str) -> float:
        """Estimated seconds of one check of ``column`` (cold)."""
        for glob, seconds in self.costs:
            if fnmatch.fnmatchcase(column, glob):
                return seconds
        return 0.01


def _check_select(sel: Any, where: str) -> None:
    if sel in ("all", "none"):
        return
    if not isinstance(sel, dict):
        raise ProfileError(f"{where}: select must be all, none or a mapping, got {sel!r}")
    unknown = set(sel) - {"tags", "strata", "cover", "dtypes", "within"}
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {sorted(unknown)} (tags, strata, cover, dtypes, within)")
    if "within" in sel:
        w = sel["within"]
        if not isinstance(w, dict) or not w or not set(w) <= {"tags", "sample"}:
            raise ProfileError(f"{where}.within: expected a mapping with `tags` and/or `sample`")
        if "tags" in w and not (isinstance(w["tags"], list) and all(isinstance(t, str) for t in w["tags"])):
            raise ProfileError(f"{where}.within.tags: must be a list of strings")
        smp = w.get("sample")
        if smp is not None and not (isinstance(smp, dict) and isinstance(smp.get("tag"), str)
                                    and isinstance(smp.get("one_in"), int) and not isinstance(smp["one_in"], bool)
                                    and smp["one_in"] >= 1 and set(smp) == {"tag", "one_in"}):
            raise ProfileError(f"{where}.within.sample: expected {{tag: <tag>, one_in: <integer >= 1>}}")
    if sel.get("cover", False) not in (True, False, "rows"):
        raise ProfileError(f"{where}.cover: must be true, false or rows, got {sel.get('cover')!r}")
    if not isinstance(sel.get("strata", 0), int) or isinstance(sel.get("strata", 0), bool) or sel.get("strata", 0) < 0:
        raise ProfileError(f"{where}.strata: must be an integer >= 0, got {sel.get('strata')!r}")
    for key in ("tags", "dtypes"):
        if key in sel and not (isinstance(sel[key], list) and all(isinstance(t, str) for t in sel[key])):
            raise ProfileError(f"{where}.{key}: must be a list of strings")


def load_profile(name: str, path: str | Path | None = None) -> Profile:
    """The profile ``name`` from ``path`` (default: the built-in profiles.yaml)."""
    path = Path(path or PROFILES_FILE)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise ProfileError(f"{path}: cannot read profiles: {exc}") from exc
    profiles = (data or {}).get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, dict) or name not in profiles:
        known = ", ".join(profiles) if isinstance(profiles, dict) else "none"
        raise ProfileError(f"{path}: no profile {name!r} (known: {known})")
    raw = profiles[name] or {}
    rules = []
    for i, r in enumerate(raw.get("rules") or []):
        where = f"{path}: profiles.{name}.rules[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("columns"), str) or "select" not in r:
            raise ProfileError(f"{where}: needs `columns` (a glob) and `select`")
        _check_select(r["select"], f"{where}.select")
        rules.append(Rule(r["columns"], r["select"]))
    costs = tuple((str(c["columns"]), float(c["seconds"])) for c in data.get("costs") or [])
    setup = tuple((str(g), float(s)) for g, s in (data.get("setup_costs") or {}).items())
    return Profile(name, str(raw.get("description", "")), tuple(rules), costs, setup)


def column(check: Check) -> str:
    """The API column a check belongs to: ``<adapter>.<api label>``."""
    return f"{check.adapter_name}.{check.label}"


def _rank(case_id: str, dtype: str) -> int:
    return zlib.crc32(f"{case_id}|{dtype}".encode())


C = TypeVar("C", bound=Check)


def in_subset(case: Case, within: dict[str, Any]) -> bool:
    """Whether ``case`` is in a ``within`` subset: it has one of ``tags``, or it has the tag
    ``sample.tag`` and CRC32(case id) % ``sample.one_in`` == 0 (a stable pick of about one in
    ``one_in``; ids never change, so neither does the pick)."""
    if set(within.get("tags") or ()) & set(case.tags):
        return True
    smp = within.get("sample")
    return bool(smp and smp["tag"] in case.tags and zlib.crc32(case.id.encode()) % smp["one_in"] == 0)


def shows_pairs(c: Check) -> set[tuple[str, str]]:
    """``cover: true``: the feature x dtype pairs a check shows (``conformance plan`` counts them too)."""
    return {(f, c.dtype) for f in case_features(c.case)}


def shows_rows(c: Check) -> set[tuple[str, str]]:
    """``cover: rows``: the feature rows and the dtype a check shows (each once is enough):
    ``(feature, "")`` and ``("dtype", dtype)``."""
    return {(f, "") for f in case_features(c.case)} | {("dtype", c.dtype)}


def select(profile: Profile, checks: Sequence[C]) -> list[C]:
    """The checks the profile runs, in their given order (see profiles.yaml for the rules)."""
    by_column: dict[str, list[C]] = defaultdict(list)
    for c in checks:
        by_column[column(c)].append(c)
    keep: set[int] = set()
    for col, items in by_column.items():
        sel = profile.rule_for(col).select
        if sel == "all":
            keep.update(map(id, items))
            continue
        if sel == "none":
            continue
        dtypes = set(sel.get("dtypes") or [])
        pool = [c for c in items if not dtypes or c.dtype in dtypes]
        if "within" in sel:  # the column's cases are first restricted to the subset
            pool = [c for c in pool if in_subset(c.case, sel["within"])]
            if not set(sel) & {"tags", "strata", "cover"}:  # nothing else said: all of the subset
                keep.update(map(id, pool))
                continue
        tags = set(sel.get("tags") or [])
        chosen = {id(c) for c in pool if tags & set(c.case.tags)}
        k = sel.get("strata", 0)
        if k:
            strata: dict[tuple, list[C]] = defaultdict(list)
            for c in pool:
                if id(c) not in chosen:
                    strata[stratum(c.case, c.dtype)].append(c)
            for group in strata.values():
                chosen.update(id(c) for c in heapq.nsmallest(k, group, key=lambda c: (_rank(c.case.id, c.dtype),
                                                                                     c.device)))
        if sel.get("cover") is True:
            covered = {p for c in pool if id(c) in chosen for p in shows_pairs(c)}
            for c in sorted(pool, key=lambda c: (_rank(c.case.id, c.dtype), c.device)):
                new = shows_pairs(c) - covered
                if new:
                    chosen.add(id(c))
                    covered |= new
        elif sel.get("cover") == "rows":  # greedy set cover: the check showing most rows still missing
            covered = {p for c in pool if id(c) in chosen for p in shows_rows(c)}
            first: dict[frozenset, C] = {}  # per distinct set of rows, its check of smallest CRC32
            for c in sorted(pool, key=lambda c: (_rank(c.case.id, c.dtype), c.device)):
                first.setdefault(frozenset(shows_rows(c)), c)
            while True:
                rows, best = max(first.items(), key=lambda kv: len(kv[0] - covered), default=(frozenset(), None))
                if best is None or not rows - covered:
                    break
                chosen.add(id(best))
                covered |= rows
        keep.update(chosen)
    return [c for c in checks if id(c) in keep]


@dataclass(frozen=True)
class PlannedItem:
    """A check before it is a pytest item (the plugin's preselection), named by its check id
    (unique in a run: a duplicate case id is a case-file problem and collected once)."""

    case: Case
    adapter_name: str
    label: str
    device: str
    dtype: str
    check_id: str
    api: str = ""  # the adapter's API name behind ``label`` (the collector builds the item from it)


def preselect(profile: Profile, planned: Sequence[PlannedItem], only_checks: str = "") -> tuple[set[str], dict[str, Any]]:
    """The check ids to build (the profile's selection, or exactly those of ``only_checks``, a
    JSON file listing pytest node ids ``<file>::<check id>``) and the run's ``selection`` record
    (before any shard; the plugin re-computes its digest over the node ids it built)."""
    if only_checks:
        wanted = {n.split("::", 1)[-1] for n in json.loads(Path(only_checks).read_text(encoding="utf-8"))}
        chosen = [c for c in planned if c.check_id in wanted]
    else:
        chosen = select(profile, planned)
    ids = [c.check_id for c in chosen]
    return set(ids), {"profile": profile.name, "collected_checks": len(planned), "selected_checks": len(chosen),
                      "digest": selection_digest(ids), "shard": None}


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` with 1 <= K <= N."""
        try:
            k, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise ProfileError(f"--shard {text!r}: expected K/N, e.g. 2/4") from None
        if not 1 <= k <= n:
            raise ProfileError(f"--shard {text!r}: need 1 <= K <= N")
        return cls(k, n)


def shard_of(profile: Profile, checks: Sequence[Check], count: int, ids: Sequence[str]) -> list[int]:
    """The shard (1-based) of every check: longest-processing-time-first over the profile's
    estimated costs, ties broken by check id, so the split is deterministic and balanced."""
    order = sorted(range(len(checks)), key=lambda i: (-profile.cost(column(checks[i])), ids[i]))
    loads = [(0.0, s) for s in range(1, count + 1)]
    heapq.heapify(loads)
    out = [0] * len(checks)
    for i in order:
        load, s = heapq.heappop(loads)
        out[i] = s
        heapq.heappush(loads, (load + profile.cost(column(checks[i])), s))
    return out


def selection_digest(ids: Sequence[str]) -> str:
    """A digest of the whole selection (before sharding): shards of one run share it."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
