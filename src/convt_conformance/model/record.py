"""The results record of one check (README "Results file"), typed.

Every producer builds a :class:`CheckRecord`: a check that ran (:func:`convt_conformance.checking.check.run_check`,
a rerun's too), a check whose process died or that failed outside the check
(:func:`convt_conformance.run.collector.crash_record`). Its identity and case fields come from one place,
:meth:`CheckRecord.for_case`, so a crash record carries the file, tags and parameters of its case
like any other. Inside the program its status and failure kind are enums
(:class:`convt_conformance.model.status.Status`, :class:`convt_conformance.model.status.FailureKind`);
the record becomes a dict of plain JSON values only where it leaves the process: :meth:`as_dict`
(the item's user property, the stream, the results file). Readers of a results file get records
(:func:`convt_conformance.results.store.read_results`, :meth:`from_dict`); a reader handed record
dicts (a payload built by hand, a test's) takes :func:`as_records` of them.

:meth:`as_dict` writes the keys in one fixed order (:data:`BASE_FIELDS`, then the
:data:`OPTIONAL_FIELDS` that are set, then unknown keys read from elsewhere), which is the order
the records have always had on disk: results files of the same run are byte-identical to those
written before records were typed (schema ``conformance-results/2``, convt_conformance/results/compact.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from convt_conformance.model.check_id import Check
from convt_conformance.model.status import FailureKind, Status, failure_kind_of, status_of

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

#: always present in a record's dict, in this order (None / "" when not known)
BASE_FIELDS: tuple[str, ...] = (
    "case", "file", "tags", "source", "description", "adapter", "api", "device", "dtype", "precision",
    "framework_version", "params", "expected_error", "status", "failure_kind", "shape", "expected_shape",
    "max_abs_err", "max_rel_err", "max_ulp", "mismatched", "tolerance", "message", "native_call", "known",
    "seconds",
)
#: present only when set (not None), in this order
OPTIONAL_FIELDS: tuple[str, ...] = (
    "cotangent", "native_dtype", "compute_dtype", "arrays", "traceback", "rejection", "underlying_status",
    "crash_output", "nodeid",
)

#: an error measure as JSON holds it: a number, or a string for a non-finite one ('inf', 'nan')
ErrorValue = float | int | str | None


@dataclass(kw_only=True, eq=False)
class CheckRecord(Mapping[str, Any]):
    """One check's record; field names are the results file's keys. Also a read-only mapping of
    :meth:`as_dict`'s keys (the enums as themselves: a StrEnum equals its value), so code written
    against record dicts (reports, scripts, tests) reads it alike, and a record equals the dict it
    was read from; writers set attributes."""

    # identity (convt_conformance/model/check_id.py) and what the record knows of its case
    case: str
    file: str | None = None
    tags: list[str] = field(default_factory=list)
    source: str | None = None
    description: str | None = None
    adapter: str
    api: str  # the API label (Adapter.api_label), as in the check id
    device: str
    dtype: str
    precision: str | None = None
    framework_version: str | None = None
    params: dict[str, Any] | None = None  # Case.params()
    expected_error: bool | None = None
    # outcome
    status: Status = Status.ERROR  # set by every producer (one that sets none leaves an error)
    failure_kind: FailureKind | None = None
    shape: list[int] | None = None
    expected_shape: list[int] | None = None
    max_abs_err: ErrorValue = None
    max_rel_err: ErrorValue = None
    max_ulp: ErrorValue = None
    mismatched: int | None = None
    tolerance: dict[str, Any] | None = None  # derived_tolerance's model parameters and "max"
    message: str = ""
    native_call: dict[str, Any] | None = None  # NativeCall.as_dict()
    known: dict[str, Any] | None = None  # {reason, issue, entry}: the known disagreement it matched
    seconds: float | None = None
    # optional: in the dict only when set
    cotangent: dict[str, Any] | None = None  # a gradient check's cotangent recipe
    native_dtype: str | None = None
    compute_dtype: str | None = None
    arrays: dict[str, Any] | None = None  # the report's grids / heat maps
    traceback: str | None = None
    rejection: dict[str, Any] | None = None  # {rule_named, expected_rules, kind} of an invalid case
    underlying_status: Status | None = None  # the status a known disagreement turned into xfail / xpass
    crash_output: str | None = None  # a dead worker's last stderr lines
    nodeid: str | None = None
    #: keys this version does not know (a newer writer's, a plugin's): kept, written last
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_case(cls, case: Case, *, adapter: str, api: str, device: str, dtype: str, precision: str | None,
                 framework_version: str | None) -> CheckRecord:
        """A record of a check of ``case`` with its identity and case fields filled, no outcome yet."""
        return cls(
            case=case.id, file=case.file, tags=list(case.tags), source=case.source,
            description=case.description, adapter=adapter, api=api, device=device, dtype=dtype,
            precision=precision, framework_version=framework_version, params=case.params(),
            expected_error=case.expected_error,
            expected_shape=list(case.output_shape) if not case.expected_error else None,
        )

    @property
    def check(self) -> Check:
        """The check this record is of (its identity across runs)."""
        return Check(self.case, self.adapter, self.api, self.device, self.dtype)

    @property
    def kind(self) -> FailureKind | Status:
        """What went wrong: the failure kind, or else the status behind a known disagreement's
        xfail / xpass, or else the status (what a finding is grouped by)."""
        return self.failure_kind or self.underlying_status or self.status

    def as_dict(self) -> dict[str, Any]:
        """The record as the results file holds it (version-1 form, before compaction): plain JSON
        values, the enums as their values."""
        out = {name: getattr(self, name) for name in BASE_FIELDS}
        out["status"] = self.status.value
        if self.failure_kind is not None:
            out["failure_kind"] = self.failure_kind.value
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.underlying_status is not None:
            out["underlying_status"] = self.underlying_status.value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckRecord:
        """The typed view of a record dict (read back from JSON; its values are not checked here but
        by :func:`convt_conformance.results.store.results_problems`, except ``status``,
        ``failure_kind`` and ``underlying_status``: ValueError naming an unknown one). Unknown keys
        go to :attr:`extra`. Built without ``__init__`` (a run's file holds 10^5 records)."""
        unknown = data.keys() - _FIELD_NAMES
        values = {**_DEFAULTS, **data}
        extra: dict[str, Any] = {}
        for k in unknown:
            extra[k] = values.pop(k)
        if "tags" not in data:
            values["tags"] = []
        values["status"] = status_of(values["status"])
        values["failure_kind"] = failure_kind_of(values["failure_kind"] or None)
        values["underlying_status"] = status_of(values["underlying_status"]) if values["underlying_status"] else None
        values["extra"] = extra
        rec = cls.__new__(cls)
        rec.__dict__.update(values)
        return rec

    # Mapping: read access by results-file key, as for the record's dict
    def __getitem__(self, key: str) -> Any:
        if key in _BASE_NAMES or (key in _FIELD_NAMES and getattr(self, key) is not None):
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


_FIELD_NAMES = frozenset(f.name for f in fields(CheckRecord)) - {"extra"}
_BASE_NAMES = frozenset(BASE_FIELDS)
assert set(BASE_FIELDS) | set(OPTIONAL_FIELDS) == _FIELD_NAMES  # every field is written
#: what from_dict starts from: every field's default (the required ones missing: a record without
#: them is refused before, by results_problems); ``tags`` and ``extra`` get their own objects
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(CheckRecord)
                             if f.name in _FIELD_NAMES and isinstance(f.default, (str, int, float, type(None)))}


def as_record(data: Mapping[str, Any]) -> CheckRecord:
    """``data`` itself when it is a CheckRecord, else :meth:`CheckRecord.from_dict` of it."""
    return data if isinstance(data, CheckRecord) else CheckRecord.from_dict(data)


def as_records(records: Iterable[Mapping[str, Any]]) -> list[CheckRecord]:
    """:func:`as_record` of each (a list of CheckRecords is returned as a new list of the same
    objects: the records keep their identity)."""
    return [r if isinstance(r, CheckRecord) else CheckRecord.from_dict(r) for r in records]
