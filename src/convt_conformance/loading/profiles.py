"""Run profiles: which checks of each API column run (``convt_conformance/loading/profiles.yaml``, data,
with each framework's part beside its adapter: :class:`FrameworkPart`), and the deterministic
cost-balanced split of a run into shards.

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
from convt_conformance.loading.features import case_features, coverage_triples, stratum
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
    unknown = set(sel) - {"tags", "strata", "cover", "times", "dtypes", "within"}
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {sorted(unknown)} (tags, strata, cover, times, dtypes, within)")
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
    if sel.get("cover", False) not in (True, False, "rows", "triples"):
        raise ProfileError(f"{where}.cover: must be true, false, rows or triples, got {sel.get('cover')!r}")
    if "times" in sel and (sel.get("cover") != "triples" or not isinstance(sel["times"], int)
                           or isinstance(sel["times"], bool) or sel["times"] < 1):
        raise ProfileError(f"{where}.times: an integer >= 1 beside `cover: triples`, got {sel['times']!r}"
                           + ("" if sel.get("cover") == "triples" else f" with cover {sel.get('cover')!r}"))
    if not isinstance(sel.get("strata", 0), int) or isinstance(sel.get("strata", 0), bool) or sel.get("strata", 0) < 0:
        raise ProfileError(f"{where}.strata: must be an integer >= 0, got {sel.get('strata')!r}")
    for key in ("tags", "dtypes"):
        if key in sel and not (isinstance(sel[key], list) and all(isinstance(t, str) for t in sel[key])):
            raise ProfileError(f"{where}.{key}: must be a list of strings")


@dataclass(frozen=True)
class FrameworkPart:
    """One framework's part of the built-in profiles: its name and its data file (its adapter's
    ``profile_file``; the caller, which may ask the adapters, passes it in: this stage is below
    them). The file has the rules of the framework's own columns per profile, their ``costs``, its
    ``setup_costs`` and ``subsets`` (YAML anchors its rules use), in profiles.yaml's syntax."""

    name: str
    path: Path


_PART_KEYS = {"subsets", "profiles", "costs", "setup_costs"}


def _read(path: Path, what: str) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise ProfileError(f"{path}: cannot read {what}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: {what} must be a mapping, got {type(data).__name__}")
    return data


def _owned(glob: str, owner: str | None) -> bool:
    """Whether a framework's file may name ``glob`` (its own columns or groups only)."""
    return owner is None or glob == owner or glob.startswith(f"{owner}.")


def _rules(raw: Any, where: str, owner: str | None = None) -> list[Rule]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ProfileError(f"{where}: must be a list of rules")
    rules = []
    for i, r in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("columns"), str) or "select" not in r:
            raise ProfileError(f"{at}: needs `columns` (a glob) and `select`")
        if not _owned(r["columns"], owner):
            raise ProfileError(f"{at}: columns {r['columns']!r}: a framework's file names its own columns "
                               f"only ({owner}.*)")
        _check_select(r["select"], f"{at}.select")
        rules.append(Rule(r["columns"], r["select"]))
    return rules


def _costs(data: dict[str, Any], path: Path, owner: str | None = None) -> list[tuple[str, float]]:
    raw = data.get("costs") or []
    if not isinstance(raw, list):
        raise ProfileError(f"{path}: costs: must be a list of {{columns: <glob>, seconds: <number>}}")
    out = []
    for i, c in enumerate(raw):
        if not (isinstance(c, dict) and isinstance(c.get("columns"), str)
                and isinstance(c.get("seconds"), int | float) and not isinstance(c["seconds"], bool)):
            raise ProfileError(f"{path}: costs[{i}]: expected {{columns: <glob>, seconds: <number>}}")
        if not _owned(c["columns"], owner):
            raise ProfileError(f"{path}: costs[{i}]: columns {c['columns']!r}: a framework's file names its "
                               f"own columns only ({owner}.*)")
        out.append((c["columns"], float(c["seconds"])))
    return out


def _setup_costs(data: dict[str, Any], path: Path, owner: str | None = None) -> list[tuple[str, float]]:
    raw = data.get("setup_costs") or {}
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: setup_costs: must be a mapping of group to seconds")
    out = []
    for g, s in raw.items():
        if not isinstance(s, int | float) or isinstance(s, bool):
            raise ProfileError(f"{path}: setup_costs.{g}: must be a number of seconds, got {s!r}")
        if not _owned(str(g), owner):
            raise ProfileError(f"{path}: setup_costs.{g}: a framework's file names its own groups only "
                               f"({owner} or {owner}.*)")
        out.append((str(g), float(s)))
    return out


def _part(part: FrameworkPart, name: str, known: dict[str, Any]) -> tuple[list[Rule], list[tuple[str, float]],
                                                                          list[tuple[str, float]]]:
    """A framework's rules for profile ``name``, its costs and its set-up costs, checked."""
    data = _read(Path(part.path), f"the profiles part of framework {part.name!r}")
    unknown = set(data) - _PART_KEYS
    if unknown:
        raise ProfileError(f"{part.path}: unknown key(s) {sorted(unknown)} ({', '.join(sorted(_PART_KEYS))})")
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ProfileError(f"{part.path}: profiles: must be a mapping of profile name to {{rules: [...]}}")
    for pname, raw in profiles.items():
        if pname not in known:
            raise ProfileError(f"{part.path}: profiles.{pname}: no such profile in the built-in profiles "
                               f"(known: {', '.join(known)})")
        if not isinstance(raw or {}, dict) or set(raw or {}) - {"rules"}:
            raise ProfileError(f"{part.path}: profiles.{pname}: expected {{rules: [...]}}")
    rules = _rules((profiles.get(name) or {}).get("rules"), f"{part.path}: profiles.{name}.rules", part.name)
    return rules, _costs(data, Path(part.path), part.name), _setup_costs(data, Path(part.path), part.name)


def load_profile(name: str, path: str | Path | None = None, *, frameworks: Sequence[FrameworkPart]) -> Profile:
    """The profile ``name`` from ``path`` (default: the built-in profiles.yaml), assembled with the
    ``frameworks``' parts: their rules first (in the order given, each file's in its order), then
    the file's own; the same for the costs; set-up costs the frameworks' and then the file's (the
    first of a group counts). The caller passes the frameworks (``()``: the file alone)."""
    path = Path(path or PROFILES_FILE)
    data = _read(path, "profiles")
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or name not in profiles:
        known = ", ".join(profiles) if isinstance(profiles, dict) else "none"
        raise ProfileError(f"{path}: no profile {name!r} (known: {known})")
    raw = profiles[name] or {}
    rules: list[Rule] = []
    costs: list[tuple[str, float]] = []
    setup: dict[str, float] = {}
    for part in frameworks:
        r, c, s = _part(part, name, profiles)
        rules += r
        costs += c
        for g, seconds in s:
            setup.setdefault(g, seconds)
    rules += _rules(raw.get("rules"), f"{path}: profiles.{name}.rules")
    costs += _costs(data, path)
    for g, seconds in _setup_costs(data, path):
        setup.setdefault(g, seconds)
    return Profile(name, str(raw.get("description", "")), tuple(rules), tuple(costs), tuple(setup.items()))


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


def shows_triples(c: Check) -> frozenset[tuple[str, str, str]]:
    """``cover: triples``: the (feature, rank, dtype) triples a check shows
    (:func:`convt_conformance.loading.features.coverage_triples`)."""
    return coverage_triples(c.case, c.dtype)


def cover_triples(pool: Sequence[C], chosen: set[int], times: int) -> set[int]:
    """``cover: triples``: a greedy set multicover of the (feature, rank, dtype) triples the
    ``pool``'s checks show: until every triple is shown by ``min(times, checks showing it)`` chosen
    checks of distinct cases, the check adding most missing showings joins (ties: smallest
    CRC32(case id | dtype)). The checks already ``chosen`` count first. Returns the ids to add.
    Lazy greedy (a gain only falls as checks join), so a column of thousands costs milliseconds."""
    order = sorted(pool, key=lambda c: (_rank(c.case.id, c.dtype), c.device))
    triples = [shows_triples(c) for c in order]
    shown: dict[tuple[str, str, str], int] = defaultdict(int)  # checks showing each triple
    for ts in triples:
        for t in ts:
            shown[t] += 1
    need = {t: min(times, n) for t, n in shown.items()}
    cases_of: dict[tuple[str, str, str], set[str]] = defaultdict(set)  # the chosen cases showing it
    for c, ts in zip(order, triples):
        if id(c) in chosen:
            for t in ts:
                cases_of[t].add(c.case.id)

    def gain(i: int) -> int:
        cid = order[i].case.id
        return sum(1 for t in triples[i] if len(cases_of[t]) < need[t] and cid not in cases_of[t])

    heap = [(-g, i) for i, c in enumerate(order) if id(c) not in chosen and (g := gain(i))]
    heapq.heapify(heap)
    added: set[int] = set()
    while heap:
        neg, i = heapq.heappop(heap)
        g = gain(i)
        if g != -neg:  # stale: back in with its gain now
            if g:
                heapq.heappush(heap, (-g, i))
            continue
        added.add(id(order[i]))
        for t in triples[i]:
            cases_of[t].add(order[i].case.id)
    return added


def _key(c: Check) -> tuple[str, str, str]:
    return (c.case.id, c.dtype, c.device)


def select(profile: Profile, checks: Sequence[C]) -> list[C]:
    """The checks the profile runs, in their given order (see profiles.yaml for the rules)."""
    by_column: dict[str, list[C]] = defaultdict(list)
    for c in checks:
        by_column[column(c)].append(c)
    keep: set[int] = set()
    multicover: dict[tuple[Any, ...], set[tuple[str, str, str]]] = {}  # `cover: triples` per pool
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
        elif sel.get("cover") == "triples":  # columns of the same checks (cases, dtypes) pick the same
            key = (tuple(_key(c) for c in pool), frozenset(_key(c) for c in pool if id(c) in chosen),
                   sel.get("times", 1))
            if key not in multicover:
                added = cover_triples(pool, chosen, key[2])
                multicover[key] = {_key(c) for c in pool if id(c) in added}
            wanted = multicover[key]  # once: the key hashes every check of the pool
            chosen |= {id(c) for c in pool if _key(c) in wanted}
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
        wanted = {n.rsplit("::", 1)[-1] for n in json.loads(Path(only_checks).read_text(encoding="utf-8"))}
        chosen = [c for c in planned if c.check_id in wanted]
    else:
        chosen = select(profile, planned)
    ids = [c.check_id for c in chosen]
    return set(ids), {"profile": profile.name, "collected_checks": len(planned), "selected_checks": len(chosen),
                      "digest": selection_digest(ids), "shard": None}


#: the most shards a run may be split into (a shard count is also refused when it exceeds the
#: checks selected: :meth:`Shard.problem`)
MAX_SHARDS = 100_000


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` with 1 <= K <= N <= :data:`MAX_SHARDS`."""
        try:
            k, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise ProfileError(f"--shard {text!r}: expected K/N, e.g. 2/4") from None
        if not 1 <= k <= n:
            raise ProfileError(f"--shard {text!r}: need 1 <= K <= N")
        if n > MAX_SHARDS:
            raise ProfileError(f"--shard {text!r}: N is at most {MAX_SHARDS}")
        return cls(k, n)

    def problem(self, selected: int) -> str | None:
        """Why this shard cannot split ``selected`` checks: more shards than checks (some would
        be empty). None when it can (or when nothing is selected: that is reported as such)."""
        if 0 < selected < self.count:
            return (f"--shard {self.index}/{self.count}: N = {self.count} is more than the {selected} "
                    f"check(s) selected; give N <= {selected}")
        return None


def shard_of(profile: Profile, checks: Sequence[Check], count: int, ids: Sequence[str]) -> list[int]:
    """The shard (1-based) of every check: longest-processing-time-first over the profile's
    estimated costs, ties broken by check id, so the split is deterministic and balanced. Memory
    is O(checks), whatever ``count`` (shards beyond the number of checks would stay empty)."""
    order = sorted(range(len(checks)), key=lambda i: (-profile.cost(column(checks[i])), ids[i]))
    loads = [(0.0, s) for s in range(1, min(count, len(checks)) + 1)]
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
