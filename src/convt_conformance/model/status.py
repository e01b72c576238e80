"""The statuses of a check and what each one means for a verdict: the only place that says
which statuses are bad.

``pass``; ``fail`` (value, shape or non-finite positions differ); ``unsupported`` (the adapter
cannot express the case natively, or the framework refuses a valid configuration as "not
supported"); ``error`` (an unexpected exception); ``rejected`` / ``accepted-invalid`` for
``expected.error`` cases; ``xfail`` / ``xpass`` for checks matched by a known disagreement;
``crash`` (the process running the check died or was stopped).

:class:`FailureKind` names what went wrong in a record's ``failure_kind`` (the one place the kinds
are named); a status and its failure kind make a check's outcome (:mod:`convt_conformance.model.outcome`),
which known disagreements name.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Status(StrEnum):
    """A check's status; its value is what the results file stores."""

    PASS = "pass"
    FAIL = "fail"
    UNSUPPORTED = "unsupported"
    ERROR = "error"
    REJECTED = "rejected"
    ACCEPTED_INVALID = "accepted-invalid"
    XFAIL = "xfail"
    XPASS = "xpass"
    CRASH = "crash"

    @property
    def failing(self) -> bool:
        """The framework (or the check) went wrong: what a known disagreement turns into xfail."""
        return self in _FAILING

    @property
    def unexpected(self) -> bool:
        """Fails the run's verdict: a failing status, or a known disagreement that now passes."""
        return self in _FAILING or self is Status.XPASS

    @property
    def good(self) -> bool:
        """The framework did what the case asks (computed it right, or rejected the invalid)."""
        return self in (Status.PASS, Status.REJECTED, Status.XPASS)

    @property
    def ran(self) -> bool:
        """The native call was made (everything but ``unsupported``)."""
        return self is not Status.UNSUPPORTED

    @property
    def severity(self) -> int:
        """0 = worst; the order in which reports show statuses."""
        return SEVERITY.index(self)

    @property
    def colour(self) -> str:
        return _COLOURS[self]


_FAILING = frozenset({Status.FAIL, Status.ERROR, Status.ACCEPTED_INVALID, Status.CRASH})
SEVERITY: tuple[Status, ...] = (Status.CRASH, Status.ERROR, Status.FAIL, Status.ACCEPTED_INVALID, Status.XPASS,
                                Status.XFAIL, Status.UNSUPPORTED, Status.REJECTED, Status.PASS)
_COLOURS = {
    Status.PASS: "#2e7d32", Status.REJECTED: "#558b2f", Status.UNSUPPORTED: "#9e9e9e", Status.XFAIL: "#f9a825",
    Status.XPASS: "#6a1b9a", Status.ACCEPTED_INVALID: "#d84315", Status.FAIL: "#c62828", Status.ERROR: "#b71c1c",
    Status.CRASH: "#000000",
}


class FailureKind(StrEnum):
    """What went wrong in a check (a record's ``failure_kind``); its value is what the results file
    stores."""

    VALUE = "value"  # finite values beyond the tolerance
    SHAPE = "shape"  # the output shape differs
    NONFINITE = "nonfinite"  # NaN / ±Inf where the exact result rounded to the dtype has none, or the reverse
    SUBNORMAL_FLUSH = "subnormal-flush"  # a nonzero subnormal result flushed to zero
    DTYPE = "dtype"  # the output came back in another dtype than the one asked for
    TIMEOUT = "timeout"  # no result within the check's time limit (status crash)
    CRASH = "crash"  # the process running the check died (status crash)


_STATUS_BY_VALUE: dict[str, Status] = {s.value: s for s in Status}
_KIND_BY_VALUE: dict[str, FailureKind] = {k.value: k for k in FailureKind}


def status_of(value: str) -> Status:
    """The Status for a stored value (ValueError naming the value when unknown)."""
    hit = _STATUS_BY_VALUE.get(value)
    if hit is None:
        raise ValueError(f"unknown status {value!r}; known: {', '.join(s.value for s in Status)}")
    return hit


def failure_kind_of(value: str | None) -> FailureKind | None:
    """The FailureKind for a stored value, None for none (ValueError naming the value when unknown)."""
    if value is None:
        return None
    hit = _KIND_BY_VALUE.get(value)
    if hit is None:
        raise ValueError(f"unknown failure kind {value!r}; known: {', '.join(k.value for k in FailureKind)}")
    return hit


def worst(statuses: Iterable[str | Status]) -> Status:
    """The most severe of ``statuses`` (``pass`` for none)."""
    return min((status_of(s) for s in statuses), key=lambda s: s.severity, default=Status.PASS)
