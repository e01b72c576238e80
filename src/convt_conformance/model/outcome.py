"""A check's outcome: what the framework did, as one string, known disagreements seen through:
the status (for an ``xfail``/``xpass`` record its ``underlying_status``), then ``/`` and the failure
kind when the record has one other than the status itself: ``pass``, ``rejected``,
``unsupported``, ``fail/value``, ``fail/shape``, ``fail/nonfinite``, ``error``,
``accepted-invalid``, ``crash``, ``crash/timeout``. A known disagreement names the outcomes it
expects with these strings (or globs of them); the release matrix compares them across releases."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from convt_conformance.model.status import FailureKind, Status

#: every outcome a check can have
OUTCOMES: tuple[str, ...] = (
    *(f"fail/{k.value}" for k in FailureKind if k not in (FailureKind.TIMEOUT, FailureKind.CRASH)),
    Status.ERROR.value, Status.ACCEPTED_INVALID.value, Status.CRASH.value, f"crash/{FailureKind.TIMEOUT.value}",
    Status.PASS.value, Status.REJECTED.value, Status.UNSUPPORTED.value,
)
#: the outcomes a known disagreement may expect (a framework going wrong)
FAILING_OUTCOMES: tuple[str, ...] = tuple(o for o in OUTCOMES if o.split("/")[0] in
                                          (Status.FAIL, Status.ERROR, Status.ACCEPTED_INVALID, Status.CRASH))


def outcome_of(status: str, failure_kind: str | None = None, underlying_status: str | None = None) -> str:
    """The outcome of a record's fields (see the module's docstring)."""
    s = str(underlying_status or status)
    return f"{s}/{failure_kind}" if failure_kind and failure_kind != s else s


def record_outcome(record: Mapping[str, Any]) -> str:
    """The outcome of a results record (a mapping with ``status`` and optionally ``failure_kind``,
    ``underlying_status``)."""
    return outcome_of(str(record["status"]), record.get("failure_kind"), record.get("underlying_status"))


def outcome_problem(pattern: str) -> str | None:
    """What is wrong with an expected-outcome pattern (None: it matches one of the failing outcomes)."""
    if any(fnmatch.fnmatchcase(o, pattern) for o in FAILING_OUTCOMES):
        return None
    return f"unknown outcome {pattern!r}; allowed: {', '.join(FAILING_OUTCOMES)} (or a glob matching one of them)"


def matches_outcome(patterns: Iterable[str], outcome: str) -> bool:
    """Whether ``outcome`` is one of the expected ``patterns`` (globs)."""
    return any(fnmatch.fnmatchcase(outcome, p) for p in patterns)
