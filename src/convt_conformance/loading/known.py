"""Known disagreements: entries of a data file (the packaged ``library/known_disagreements.yaml``,
or ``--known``), each a finding about one framework with its reason, scoped three ways:

- **the checks** it concerns: globs over ``adapter``, ``api``, ``device``, ``dtype`` and
  ``precision``, and the configurations as ``where:`` conditions on the case
  (:mod:`convt_conformance.loading.scope`: ``groups > 1``, ``output_padding >= stride``,
  ``nan-input``, ...); ``case`` names one case of the library for a finding of that case alone
  (no glob: someone else's cases are described by their configuration, not by our ids);
- **the releases** it was seen on: ``versions:``, PEP 440 specifiers over distributions
  (``{onnxruntime: ">=1.20,<1.32"}``; ``a|b`` names whichever of two distributions is installed);
- **the outcome** it expects: ``outcome:``, one or more of
  :data:`convt_conformance.model.outcome.FAILING_OUTCOMES` (``fail/value``, ``error``,
  ``accepted-invalid``, ``crash``, ...), or globs of them.

A check the entry names, on a release it was seen on, that has an expected outcome is ``xfail``;
one that passes (or rejects an invalid configuration) is ``xpass`` unless ``strict: false`` (a
systematic weakness that shows on some inputs only). A failing check the entry names but whose
outcome or releases differ stays unexpected, and its message says why: "known disagreement X
expects <outcome> on <versions>; got <outcome> on <versions>". ``when:`` limits an entry to machines
where the facts it names hold (convt_conformance/model/env_facts.py: a CPU flag such as
``amx_bf16``, or ``tensorflow.onednn_custom_ops``).

Every entry has an ``id`` (unique; what results and messages name it by), ``versions``,
``outcome`` and ``reason``; ``issue`` (an upstream link) and ``evidence`` (what was run, where)
are optional. Anything else is a located problem of the file.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convt_conformance.loading.scope import Condition, VersionScope, parse_versions, parse_where, where_holds
from convt_conformance.loading.yaml_io import load_yaml_file
from convt_conformance.model.case import Case
from convt_conformance.model.check_id import Check
from convt_conformance.model.env_facts import holds, parse_when
from convt_conformance.model.outcome import matches_outcome, outcome_problem

_GLOBS = ("adapter", "api", "device", "dtype", "precision")
_KEYS = frozenset({"id", "case", "where", *_GLOBS, "versions", "outcome", "reason", "issue", "evidence", "strict",
                   "when"})
_ID = re.compile(r"\A[a-z0-9][a-z0-9._-]*\Z")
# An entry without `api` covers an adapter's forward columns (its APIs and their execution paths,
# `...@compile`: the same op on another route), not its gradient columns (`...:grad_input`): those
# run other kernels, and a forward finding is no evidence about them. An entry for a gradient
# names it (`api: "*:grad_*"`); one that holds for the plain call only names that (`api: "conv*d_transpose"`).
BASE_APIS = "<base>"
_MATCH_ORDER = ("adapter", "dtype", "device", "api", "precision")  # most selective first
VARIANT_MARKS = (":grad_",)
_GLOB_CHARS = re.compile(r"[*?\[\]]")


@dataclass(frozen=True)
class KnownDisagreement:
    id: str
    adapter: str
    api: str
    device: str
    dtype: str
    precision: str
    versions: VersionScope
    outcomes: tuple[str, ...]  # the outcomes it expects (globs over FAILING_OUTCOMES)
    reason: str
    case: str = "*"  # one case id, or "*": any case the `where` conditions accept
    where: tuple[Condition, ...] = ()
    issue: str = ""
    evidence: str = ""
    strict: bool = True  # False: a matching check that passes stays `pass` (not `xpass`)
    when: tuple[str, ...] = ()  # facts that must hold on this machine (convt_conformance/model/env_facts.py)

    def names(self, check: Check, precision: str, case: Case | None) -> bool:
        """Whether the entry concerns this check (its case, adapter, api, device, dtype, precision
        and the machine's facts), whatever its outcome and the installed releases. ``case`` is the
        case object (None: only entries without ``where`` can name the check)."""
        if self.api == BASE_APIS and any(c in check.api for c in VARIANT_MARKS):
            return False  # an entry naming no api covers the plain API columns only
        if self.case != "*" and check.case != self.case:
            return False
        fields = {"adapter": check.adapter, "dtype": check.dtype, "device": check.device, "api": check.api,
                  "precision": precision}
        if not all(fnmatch.fnmatchcase(fields[k], self._pattern(k)) for k in _MATCH_ORDER):
            return False
        if self.where and (case is None or not where_holds(self.where, case)):
            return False
        return not self.when or holds(self.when)

    def in_scope(self, version_of: Callable[[str], str | None] | None = None) -> bool:
        """Whether the installed releases are ones the entry was seen on."""
        return self.versions.holds(version_of)

    def expects(self, outcome: str) -> bool:
        """Whether ``outcome`` is one the entry expects."""
        return matches_outcome(self.outcomes, outcome)

    def expectation(self, outcome: str, version_of: Callable[[str], str | None] | None = None) -> str:
        """Why a failing check this entry names is still unexpected."""
        return (f"known disagreement {self.id} expects {' or '.join(self.outcomes)} on {self.versions.describe()}; "
                f"got {outcome} on {self.versions.installed(version_of)}")

    def matches_api(self, label: str) -> bool:
        """Whether the entry covers the API column ``label`` (whatever the other fields)."""
        if self.api == BASE_APIS and any(c in label for c in VARIANT_MARKS):
            return False
        return fnmatch.fnmatchcase(label, self._pattern("api"))

    def _pattern(self, key: str) -> str:
        value = str(getattr(self, key))
        return "*" if key == "api" and value == BASE_APIS else value


def _outcomes(value: object) -> tuple[tuple[str, ...], str | None]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        return (), "must be an outcome or a list of them (fail/value, error, accepted-invalid, crash, ...)"
    for v in items:
        why = outcome_problem(v)
        if why:
            return (), why
    return tuple(items), None


def _entry(e: Mapping[str, Any], where_: str) -> tuple[KnownDisagreement | None, list[str]]:
    """One entry of the file, or the problems that keep it out (each prefixed with ``where_``)."""
    probs: list[str] = []
    unknown = sorted(set(e) - _KEYS)
    if unknown:
        probs.append(f"unknown key(s) {unknown}; known: {', '.join(sorted(_KEYS))}")
    for key in ("id", "versions", "outcome", "reason"):
        if key not in e:
            probs.append(f"`{key}` is required")
    text_keys = ("id", "case", *_GLOBS, "reason", "issue", "evidence", "when")
    mistyped = [k for k in text_keys if k in e and not isinstance(e[k], str)]
    if "strict" in e and not isinstance(e["strict"], bool):
        mistyped.append("strict")
    probs += [f"{k}: must be {'true or false' if k == 'strict' else 'a string'}" for k in mistyped]
    if probs:
        return None, [f"{where_}: {p}" for p in probs]
    if not _ID.fullmatch(e["id"]):
        probs.append(f"id: {e['id']!r} must match {_ID.pattern[2:-2]}")
    case = str(e.get("case", "*"))
    if case != "*" and _GLOB_CHARS.search(case):
        probs.append(f"case: {case!r} is a glob; name one case, or describe the configurations with `where:` "
                     "(conditions such as `groups > 1`, `nan-input`)")
    versions, why = parse_versions(e["versions"])
    if why:
        probs.append(f"versions: {why}")
    outcomes, why = _outcomes(e["outcome"])
    if why:
        probs.append(f"outcome: {why}")
    conditions, bad = parse_where(e.get("where", []))
    probs += [f"where: {b}" for b in bad]
    when, why = parse_when(str(e["when"])) if "when" in e else ((), None)
    if why:
        probs.append(f"when: {why}")
    if probs or versions is None:
        return None, [f"{where_}: {p}" for p in probs]
    return KnownDisagreement(
        id=e["id"], case=case, where=conditions, adapter=str(e.get("adapter", "*")), api=str(e.get("api", BASE_APIS)),
        device=str(e.get("device", "*")), dtype=str(e.get("dtype", "*")), precision=str(e.get("precision", "*")),
        versions=versions, outcomes=outcomes, reason=str(e["reason"]), issue=str(e.get("issue", "")),
        evidence=str(e.get("evidence", "")), strict=bool(e.get("strict", True)), when=when), []


def load_known(path: str | Path | None) -> tuple[list[KnownDisagreement], list[str]]:
    """Entries of the file and the problems found (file, entry index and id, key, what is wrong).

    No path, an empty path or a missing file: no entries (``conformance run`` refuses a missing
    ``--known`` file it was given explicitly before it starts). The file goes through the same
    size limits as a case file."""
    if not path or not Path(path).exists():
        return [], []
    data, why = load_yaml_file(path)
    if why:
        return [], [f"{path}: {why}"]
    data = {} if data is None else data
    entries = data.get("disagreements", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [f"{path}: top level must be a mapping with a `disagreements:` list"]
    out: list[KnownDisagreement] = []
    problems: list[str] = []
    first: dict[str, int] = {}
    for i, e in enumerate(entries):
        label = f"{path}: disagreements[{i}]"
        if not isinstance(e, dict):
            problems.append(f"{label}: must be a mapping")
            continue
        if isinstance(e.get("id"), str):
            label += f" ({e['id']})"
        entry, probs = _entry(e, label)
        problems += probs
        if entry is None:
            continue
        if entry.id in first:
            problems.append(f"{label}: id: {entry.id!r} is also disagreements[{first[entry.id]}]'s")
            continue
        first[entry.id] = i
        out.append(entry)
    return out, problems


@dataclass(frozen=True)
class KnownMatch:
    """What the known disagreements say of one check: the entry that covers it (None: none), or
    the first entry that names it but expects another outcome or other releases (``near``)."""

    entry: KnownDisagreement | None
    near: KnownDisagreement | None = None


def match_known(entries: list[KnownDisagreement], check: Check, precision: str, case: Case | None, outcome: str,
                passing: bool, version_of: Callable[[str], str | None] | None = None) -> KnownMatch:
    """The entry covering a check with ``outcome`` (``passing``: the framework did what the case asks,
    so any entry naming it in scope covers it, as an ``xpass``), else the first entry naming it."""
    adapter = check.adapter
    near = None
    for e in entries_where(entries, f"adapter={adapter}", lambda e: fnmatch.fnmatchcase(adapter, e.adapter)):
        if not e.names(check, precision, case):
            continue
        if e.in_scope(version_of) and (passing or e.expects(outcome)):
            return KnownMatch(e, None)
        near = near or e
    return KnownMatch(None, near)


def find_known(entries: list[KnownDisagreement], check: Check, precision: str, case: Case | None,
               outcome: str) -> KnownDisagreement | None:
    """The entry covering a failing check with ``outcome`` on the installed releases, or None."""
    return match_known(entries, check, precision, case, outcome, False).entry


_FILTERED: dict[tuple[int, str], tuple[list[KnownDisagreement], int, list[KnownDisagreement]]] = {}


def entries_where(entries: list[KnownDisagreement], key: str,
                  keep: Callable[[KnownDisagreement], bool]) -> list[KnownDisagreement]:
    """The entries ``keep`` accepts, in file order, worked out once per list object and ``key``
    (``key`` names the filter: the same key, the same ``keep``); a list that grew is filtered again."""
    hit = _FILTERED.get((id(entries), key))
    if hit is None or hit[0] is not entries or hit[1] != len(entries):  # an id alone could be reused
        if len(_FILTERED) > 64:  # a run has one list and a few keys; tests make many lists
            _FILTERED.clear()
        hit = _FILTERED[(id(entries), key)] = (entries, len(entries), [e for e in entries if keep(e)])
    return hit[2]
