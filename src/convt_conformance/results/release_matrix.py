"""The release matrix: the checks whose outcome differs across the releases of one framework.

An outcome is what the framework did, known disagreements seen through
(:mod:`convt_conformance.model.outcome`: ``fail/value``, ``error``, ``crash/timeout``, ``pass``, ...);
a check a release did not run is ``absent``. Input: one results
payload per release, in release order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from convt_conformance.model.check_id import Check
from convt_conformance.model.outcome import record_outcome

ABSENT = "absent"


def outcome(record: Mapping[str, Any]) -> str:
    """The framework's own outcome of a record (:func:`convt_conformance.model.outcome.record_outcome`)."""
    return record_outcome(record)


@dataclass
class MatrixRow:
    """One check whose outcome differs across the releases: its outcome per release (in the
    matrix's release order) and, per non-passing outcome, the first and last release showing it."""

    check: Check
    outcomes: list[str]
    spans: dict[str, tuple[str, str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # outcome -> the message of its first record


@dataclass
class ReleaseMatrix:
    """The releases (ascending), the rows that differ, and how many checks each release ran."""

    framework: str
    distribution: str
    releases: list[str]
    rows: list[MatrixRow]
    checks_per_release: list[int]
    same: int  # checks with one outcome on every release


def release_matrix(framework: str, distribution: str, releases: Sequence[str],
                   payloads: Sequence[Mapping[str, Any]]) -> ReleaseMatrix:
    """The matrix of ``payloads`` (one results payload per release of ``releases``): the checks of
    ``framework`` whose outcome is not the same on every release, ordered by case and column."""
    per_release: list[dict[Check, Mapping[str, Any]]] = []
    for p in payloads:
        per_release.append({Check.of(r): r for r in p.get("results") or [] if r.get("adapter") == framework})
    checks = sorted(set().union(*per_release)) if per_release else []
    rows: list[MatrixRow] = []
    same = 0
    for check in checks:
        recs = [m.get(check) for m in per_release]
        outs = [outcome(r) if r is not None else ABSENT for r in recs]
        if len(set(outs)) == 1:
            same += 1
            continue
        row = MatrixRow(check, outs)
        for i, o in enumerate(outs):
            if o in ("pass", ABSENT):
                continue
            first = row.spans.get(o, (releases[i], releases[i]))[0]
            row.spans[o] = (first, releases[i])
            rec = recs[i]
            if o not in row.reasons and rec is not None:
                row.reasons[o] = str(rec.get("message") or "")[:300]
        rows.append(row)
    return ReleaseMatrix(framework, distribution, list(releases), rows,
                         [len(m) for m in per_release], same)


@dataclass
class Transition:
    """Where an outcome changed between two consecutive releases, over the matrix's rows."""

    before: str
    after: str
    from_outcome: str
    to_outcome: str
    checks: list[Check]


def transitions(matrix: ReleaseMatrix) -> list[Transition]:
    """The changes of outcome between consecutive releases, grouped by (releases, outcomes): the
    boundaries a bisection would find, most checks first."""
    groups: dict[tuple[int, str, str], list[Check]] = {}
    for row in matrix.rows:
        for i in range(1, len(row.outcomes)):
            a, b = row.outcomes[i - 1], row.outcomes[i]
            if a != b and ABSENT not in (a, b):
                groups.setdefault((i, a, b), []).append(row.check)
    out = [Transition(matrix.releases[i - 1], matrix.releases[i], a, b, checks)
           for (i, a, b), checks in groups.items()]
    return sorted(out, key=lambda t: (-len(t.checks), t.before, t.from_outcome, t.to_outcome))
