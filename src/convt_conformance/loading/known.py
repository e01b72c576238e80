"""Known disagreements: a data file of (case glob × adapter × api × device × dtype × precision)
-> reason and upstream link. A matching failure is ``xfail``; a matching pass is ``xpass``,
unless the entry says ``strict: false`` (a systematic weakness that shows on some inputs only:
matching passes stay ``pass``). ``when:`` limits an entry to machines where the facts it names
hold (convt_conformance/model/env_facts.py: a CPU flag such as ``amx_bf16``, or ``tensorflow.onednn_custom_ops``):
a finding of one CPU kind is expected there only, and the same check must pass elsewhere."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from convt_conformance.loading.yaml_io import load_yaml_file
from convt_conformance.model.env_facts import holds, parse_when

_KEYS = ("case", "adapter", "api", "device", "dtype", "precision", "kind")
# An entry without `api` covers an adapter's forward columns (its APIs and their execution paths,
# `...@compile`: the same op on another route), not its gradient columns (`...:grad_input`): those
# run other kernels, and a forward finding is no evidence about them. An entry for a gradient
# names it (`api: "*:grad_*"`); one that holds for the plain call only names that (`api: "conv*d_transpose"`).
BASE_APIS = "<base>"
_MATCH_ORDER = ("adapter", "dtype", "device", "api", "kind", "precision", "case")  # most selective first: a check is matched against every entry
VARIANT_MARKS = (":grad_",)


@dataclass(frozen=True)
class KnownDisagreement:
    case: str
    adapter: str
    api: str
    device: str
    dtype: str
    precision: str
    kind: str  # failure kind (value, shape, nonfinite) or status (error, accepted-invalid) it covers
    reason: str
    issue: str
    strict: bool = True  # False: a matching check that passes stays `pass` (not `xpass`)
    when: tuple[str, ...] = ()  # facts that must hold on this machine (convt_conformance/model/env_facts.py)

    def matches(self, **fields: str) -> bool:
        if self.api == BASE_APIS and any(c in str(fields.get("api", "")) for c in VARIANT_MARKS):
            return False  # an entry naming no api covers the plain API columns only
        return (all(fnmatch.fnmatchcase(str(fields.get(k, "")), self._pattern(k)) for k in _MATCH_ORDER)
                and (not self.when or holds(self.when)))

    def matches_api(self, label: str) -> bool:
        """Whether the entry covers the API column ``label`` (whatever the other fields)."""
        if self.api == BASE_APIS and any(c in label for c in VARIANT_MARKS):
            return False
        return fnmatch.fnmatchcase(label, self._pattern("api"))

    def _pattern(self, key: str) -> str:
        value = getattr(self, key)
        return "*" if key == "api" and value == BASE_APIS else value


def load_known(path: str | Path | None) -> tuple[list[KnownDisagreement], list[str]]:
    """Entries of the file and the problems found (file, entry index, key, what is wrong).

    No path, an empty path or a missing file: no entries (``conformance run`` refuses a missing
    ``--known`` file it was given explicitly before it starts). The file goes through the same
    size limits as a case file."""
    if not path or not Path(path).exists():
        return [], []
    problems: list[str] = []
    data, why = load_yaml_file(path)
    if why:
        return [], [f"{path}: {why}"]
    data = {} if data is None else data
    entries = data.get("disagreements", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [f"{path}: top level must be a mapping with a `disagreements:` list"]
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            problems.append(f"{path}: disagreements[{i}]: must be a mapping")
            continue
        unknown = set(e) - {*_KEYS, "reason", "issue", "strict", "when"}
        if unknown:
            problems.append(f"{path}: disagreements[{i}]: unknown key(s) {sorted(unknown)}")
            continue
        if not e.get("case") or not e.get("reason"):
            problems.append(f"{path}: disagreements[{i}]: `case` and `reason` are required")
            continue
        mistyped = [k for k in (*_KEYS, "reason", "issue", "when") if k in e and not isinstance(e[k], (str, int, float))]
        if "strict" in e and not isinstance(e["strict"], bool):
            mistyped.append("strict")
        if mistyped:
            problems.append(f"{path}: disagreements[{i}]: {', '.join(mistyped)}: must be "
                            + ("a string" if mistyped != ["strict"] else "true or false")
                            + (" (strict: true or false)" if "strict" in mistyped and len(mistyped) > 1 else ""))
            continue
        when, why = parse_when(str(e["when"])) if "when" in e else ((), None)
        if why:
            problems.append(f"{path}: disagreements[{i}]: when: {why}")
            continue
        out.append(KnownDisagreement(
            case=str(e["case"]), adapter=str(e.get("adapter", "*")), api=str(e.get("api", BASE_APIS)),
            device=str(e.get("device", "*")), dtype=str(e.get("dtype", "*")),
            precision=str(e.get("precision", "*")), kind=str(e.get("kind", "*")), reason=str(e["reason"]), issue=str(e.get("issue", "")),
            strict=bool(e.get("strict", True)), when=when))
    return out, problems


def find_known(entries: list[KnownDisagreement], **fields: str) -> KnownDisagreement | None:
    """The first entry matching the check's fields, or None."""
    adapter = str(fields.get("adapter", ""))
    # every check is matched against the list, most entries name another adapter
    for e in entries_where(entries, f"adapter={adapter}", lambda e: fnmatch.fnmatchcase(adapter, e.adapter)):
        if e.matches(**fields):
            return e
    return None


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
