"""One conformance check: (case, adapter, api, device, dtype) -> one results record.

Pure function of its arguments (no module state), so it runs the same in any pytest worker.
"""

from __future__ import annotations

import collections
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convt_conformance.adapters.base import Adapter, RunOutput, failed_call
from convt_conformance.checking.compare import compare
from convt_conformance.checking.gradient_check import GradientExpectation, gradient_expectation
from convt_conformance.checking.invalid_rules import (
    adapter_files,
    classify_rejection,
    framework_modules,
    raised_by_adapter,
    refusal_of,
    rules_of_reasons,
)
from convt_conformance.checking.tolerance import derived_tolerance, partial_sums_may_overflow, terms_per_output
from convt_conformance.loading.known import KnownDisagreement, match_known
from convt_conformance.model.apis import gradient_quantity, not_applicable_reason
from convt_conformance.model.case import Case
from convt_conformance.model.env_facts import note_adapter
from convt_conformance.model.outcome import outcome_of
from convt_conformance.model.record import CheckRecord
from convt_conformance.model.status import FailureKind, Status
from convt_conformance.oracle import forward as ref


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def reference_and_magnitude(case: Case, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """The oracle (scatter definition, float64) and convT(|x|, |w|) + |b| for the tolerance."""
    spec = case.spec
    with np.errstate(invalid="ignore", over="ignore"):
        y = ref.conv_transpose_scatter(x, w, b, stride=spec.stride, padding=spec.padding,
                                       output_padding=spec.output_padding, dilation=spec.dilation, groups=spec.groups)
        mag = ref.conv_transpose_scatter(np.abs(x), np.abs(w), None if b is None else np.abs(b), stride=spec.stride,
                                         padding=spec.padding, output_padding=spec.output_padding,
                                         dilation=spec.dilation, groups=spec.groups)
    return y, mag


@dataclass
class _Memo:
    case: Case  # the same object, not just the same id (tests reuse ids)
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    reference: tuple[np.ndarray, np.ndarray] | None = None  # (reference, magnitude), computed lazily
    gradients: dict[str, GradientExpectation] = field(default_factory=dict)  # by quantity, lazily


_MEMO: collections.OrderedDict[tuple[str, str, str], _Memo] = collections.OrderedDict()
_MEMO_SIZE = 32


def _memo_hit(case: Case, dtype: str) -> _Memo | None:
    """The memo of (case, dtype), if it is this very case object (tests reuse ids)."""
    hit = _MEMO.get((case.file, case.id, dtype))
    return hit if hit is not None and hit.case is case else None


def memo_inputs(case: Case, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(x, w, b) of ``case`` in ``dtype``, computed once per worker for all the APIs that check
    it, with its reference and magnitude (:func:`memo_reference`, lazily) (a small LRU: checks of
    one case arrive together); callers get copies of the tensors, so an adapter that writes into
    its inputs cannot change another check's."""
    key = (case.file, case.id, dtype)
    hit = _memo_hit(case, dtype)
    if hit is None:
        hit = _MEMO[key] = _Memo(case, *case.tensors(dtype))
        if len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    else:
        _MEMO.move_to_end(key)
    return hit.x.copy(), hit.w.copy(), (None if hit.b is None else hit.b.copy())


def memo_reference(case: Case, dtype: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reference_and_magnitude` of the memoised inputs of (case, dtype), computed once."""
    hit = _memo_hit(case, dtype)
    if hit is None:
        return reference_and_magnitude(case, x, w, b)
    if hit.reference is None:
        hit.reference = reference_and_magnitude(case, hit.x, hit.w, hit.b)
    return hit.reference


def memo_gradient(case: Case, api: str, dtype: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
                  ) -> GradientExpectation:
    """:func:`gradient_expectation` of the memoised inputs of (case, dtype) for the quantity of the
    gradient ``api``, computed once for all the APIs (and frameworks) of a worker that check it;
    the cotangent is a copy (it goes to the adapter), the reference arrays are read only."""
    hit = _memo_hit(case, dtype)
    if hit is None:
        return gradient_expectation(case, api, dtype, x, w, b)
    q = str(gradient_quantity(api))
    if q not in hit.gradients:
        hit.gradients[q] = gradient_expectation(case, api, dtype, hit.x, hit.w, hit.b)
    grad = hit.gradients[q]
    return replace(grad, g=grad.g.copy(), recipe=dict(grad.recipe))


def range_arguments(magnitude: np.ndarray, dtype: str, tol_info: dict[str, Any]) -> dict[str, Any]:
    """compare()'s output-range arguments (README "Output range semantics"): the tolerance's
    flushed-products floor and where partial sums may overflow the accumulator."""
    return {"floor": float(tol_info.get("floor", 0.0)),
            "order_dependent": partial_sums_may_overflow(magnitude, dtype)}


def base_record(case: Case, adapter: Adapter, api: str, device: str, dtype: str, precision: str) -> CheckRecord:
    """The record of a check of ``case`` with the identifying fields every record carries."""
    return CheckRecord.for_case(case, adapter=adapter.name, api=adapter.api_label(api, case.rank), device=device,
                                dtype=dtype, precision=precision, framework_version=adapter.version())


def _refused(adapter: Adapter, exc: BaseException) -> tuple[bool, str]:
    """(True, "") for the framework's own refusal of a configuration it does not implement, on a
    release the refusal was seen on (``unsupported``: its ``rejections.yaml``); (False, why) for the
    same refusal on another release (a valid configuration newly refused: an ``error``, the why
    prefixed to its message); (False, "") for any other exception."""
    refusal, in_scope = refusal_of(adapter.name, str(exc))
    if refusal is None:
        return False, ""
    if in_scope:
        return True, ""
    return False, (f"{adapter.name} refused it with a message its rejections.yaml knows as `unsupported` on "
                   f"{refusal.versions.describe()}, not on {refusal.versions.installed()}: a valid configuration refused. ")


def run_check(case: Case, adapter: Adapter, api: str, device: str, dtype: str, precision: str,
              known: list[KnownDisagreement], keep_arrays: bool = False) -> CheckRecord:
    """Run one check and return its record (see README "Results file")."""
    t0 = time.perf_counter()
    note_adapter(adapter)  # its facts() decide the known disagreements' `when:`
    rec = base_record(case, adapter, api, device, dtype, precision)
    reason = (f"restricted to {', '.join(case.frameworks)}: {case.frameworks_reason}"
              if case.frameworks and adapter.name not in case.frameworks else None)
    reason = reason or (f"{adapter.name} does not support dtype {dtype}" if dtype not in adapter.dtypes else None)
    reason = reason or not_applicable_reason(case, api)  # gradients of invalid / bias-free cases
    reason = reason or adapter.supports(case, api, device, dtype)
    if reason:
        rec.status, rec.message = Status.UNSUPPORTED, reason
        rec.seconds = time.perf_counter() - t0
        return rec
    x, w, b = memo_inputs(case, dtype)
    if case.expected_error:
        try:
            out = adapter.run(case, api, device, dtype, x, w, b)
        except Exception as exc:  # refused: a feature refusal, the adapter's bug, or a rejection
            reject(rec, case, adapter, exc)
        else:
            if _misplaced(rec, out, device):
                return _finish(rec, known, t0, case)
            rec.status, rec.shape = Status.ACCEPTED_INVALID, list(out.array.shape)
            rec.native_call = out.native_call.as_dict()
            rec.message = ("invalid configuration accepted; returned shape "
                           f"{list(out.array.shape)}. Why invalid: {'; '.join(case.invalid_reasons)}")
    else:
        run_kw: dict[str, Any] = {}
        if gradient_quantity(api):  # convt_conformance/checking/gradient_check.py: own reference, terms, cotangent
            grad = memo_gradient(case, api, dtype, x, w, b)
            reference, expected = grad.reference, grad.expected
            magnitude, n_terms, override, run_kw = grad.magnitude, grad.n_terms, None, {"cotangent": grad.g}
            rec.cotangent, rec.expected_shape = grad.recipe, list(reference.shape)
            bias_added = False  # a gradient is one sum, rounded once
        else:
            reference, magnitude = memo_reference(case, dtype, x, w, b)
            expected = case.expected_values if case.expected_values is not None else reference
            n_terms = terms_per_output(case.in_channels, case.groups, case.geometry.kernel) + (b is not None)
            override = case.tolerance
            bias_added = b is not None
        try:
            out = adapter.run(case, api, device, dtype, x, w, b, **run_kw)
        except Exception as exc:
            msg = f"{type(exc).__name__}: {str(exc)[:800]}"
            refused, why = _refused(adapter, exc)
            if refused:
                rec.status, rec.message = Status.UNSUPPORTED, f"the framework refuses it: {msg}"
            else:
                rec.status, rec.message, rec.traceback = Status.ERROR, why + msg, _traceback(exc)
                call = failed_call(exc)  # the adapter says what failed
                rec.native_call = call.as_dict() if call is not None else None
        else:
            if _misplaced(rec, out, device):
                return _finish(rec, known, t0, case)
            tol, info = derived_tolerance(magnitude, reference, dtype=dtype, device=device, precision=precision,
                                          n_terms=n_terms, override=override, bias_added=bias_added,
                                          compute_dtype=out.compute_dtype,
                                          inputs=(x, w, b) if out.compute_dtype not in (None, dtype) else ())
            # a path that computes in another dtype (autocast) returns that dtype: its overflow,
            # underflow and ULPs are that dtype's (tolerance: derived_tolerance's compute_dtype)
            out_dtype = out.compute_dtype or dtype
            cmp = compare(out.array, expected, tol, out_dtype, **range_arguments(magnitude, out_dtype, info))
            rec.status = Status.PASS if cmp.ok else Status.FAIL
            rec.failure_kind = cmp.kind
            rec.shape = list(out.array.shape)
            rec.max_abs_err, rec.max_rel_err = _float(cmp.max_abs_err), _float(cmp.max_rel_err)
            rec.max_ulp, rec.mismatched = cmp.max_ulp, cmp.mismatched
            rec.tolerance, rec.message = info, cmp.message
            rec.native_call = out.native_call.as_dict()
            rec.native_dtype, rec.compute_dtype = out.native_dtype, out.compute_dtype or dtype
            if keep_arrays or not cmp.ok:
                rec.arrays = _arrays_for_report(out.array, expected, tol)
            if cmp.ok and out.native_dtype != dtype and not out.compute_dtype:  # autocast states its own
                # a float16 check answered in float64 says nothing about float16 (its values are
                # far inside the float16 tolerance): the output dtype is part of the contract
                rec.status, rec.failure_kind = Status.FAIL, FailureKind.DTYPE
                rec.message = (f"the framework returned {out.native_dtype}, not the {dtype} asked for "
                               f"(values within the {dtype} tolerance: {cmp.message})")
    return _finish(rec, known, t0, case)


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)[-3:])[-2000:]


def reject(rec: CheckRecord, case: Case, adapter: Adapter, exc: BaseException) -> None:
    """Record an exception on an ``expected.error`` case (README "Invalid configurations"): a
    feature refusal (the framework's ``rejections.yaml``, ``unsupported``) is ``unsupported`` and says nothing about
    the invalid rule; an exception raised by the adapter's own code is ``error``; anything else
    is ``rejected`` with ``rejection: {rule_named, expected_rules, kind}``, ``kind: internal``
    meaning stopped by an internal failure, not checked."""
    text = f"{type(exc).__name__}: {str(exc)[:500]}"
    refused, why = _refused(adapter, exc)
    if refused:
        rec.status, rec.message = Status.UNSUPPORTED, f"feature refusal on an invalid case: {text}"
        return
    if why:
        rec.status, rec.message, rec.traceback = Status.ERROR, why + text, _traceback(exc)
        return
    own = raised_by_adapter(exc, framework_modules(adapter.name, adapter.module), adapter_files(adapter))
    if own:
        rec.status, rec.message = Status.ERROR, f"adapter failure, not a rejection ({own}): {text}"
        rec.traceback = _traceback(exc)
        return
    rec.status, rec.message = Status.REJECTED, text
    rec.rejection = classify_rejection(adapter.name, text, rules_of_reasons(case.invalid_reasons))


def _misplaced(rec: CheckRecord, out: RunOutput, device: str) -> bool:
    """A result read back from another device than the check asked for (e.g. a framework that
    fell back to the CPU for a "gpu" check) is an error, whatever its values: True then."""
    if out.placed_on == device:
        return False
    rec.status, rec.native_call = Status.ERROR, out.native_call.as_dict()
    rec.message = (f"{rec.adapter}.{rec.api} returned its output on {out.placed_on!r}, not on the "
                   f"requested {device!r}: the result cannot stand for that device")
    return True


def _finish(rec: CheckRecord, known: list[KnownDisagreement], t0: float, case: Case) -> CheckRecord:
    apply_known(rec, known, case)
    rec.seconds = time.perf_counter() - t0
    return rec


def apply_known(rec: CheckRecord, known: list[KnownDisagreement], case: Case | None = None) -> None:
    """Match a record against the known disagreements (loading/known.py): a failing check whose
    outcome an entry expects on the installed releases becomes ``xfail``; a pass or rejection that
    an in-scope strict entry names, ``xpass``; the entry is kept on the record. A failing check
    that an entry names with another outcome or other releases stays as it is, its message saying
    what the entry expected. ``case``: the case object (entries with ``where:`` need it)."""
    status = rec.status
    passing = status in (Status.PASS, Status.REJECTED)
    if not (status.failing or passing):
        return
    outcome = outcome_of(status, rec.failure_kind)
    m = match_known(known, rec.check, rec.precision or "", case, outcome, passing)
    entry = m.entry
    if entry is None:
        if m.near is not None and status.failing:
            rec.message = f"{m.near.expectation(outcome)}. {rec.message or ''}".rstrip(". ")
        return
    rec.known = {"reason": entry.reason, "issue": entry.issue, "entry": known.index(entry), "id": entry.id}
    if status.failing:
        rec.underlying_status, rec.status = rec.status, Status.XFAIL
    elif entry.strict:
        rec.underlying_status, rec.status = rec.status, Status.XPASS


_GRID_LIMIT = 16


def _arrays_for_report(actual: np.ndarray, expected: np.ndarray, tol: np.ndarray) -> dict[str, Any]:
    """Small outputs: full grids of the first (n, c) slices; large ones: an error map summary."""
    if actual.shape != expected.shape or actual.size == 0:
        return {}
    if actual.ndim == 1:  # a bias gradient (C_out,): one row
        actual, expected, tol = (m.reshape(1, -1) if m.shape == actual.shape else m
                                 for m in (actual, expected, tol))
    a = actual.reshape(-1, *actual.shape[2:]) if actual.ndim > 2 else actual
    e = expected.reshape(-1, *expected.shape[2:]) if expected.ndim > 2 else expected
    t = tol.reshape(a.shape) if tol.shape == actual.shape else np.zeros_like(a)
    # 1-D and 3-D spatial: present as 2-D maps (1 x W; D*H x W).
    def as2d(m: np.ndarray) -> np.ndarray:
        if m.ndim == 2:  # (slices, W)
            return m[:, None, :]
        if m.ndim == 4:
            return m.reshape(m.shape[0], m.shape[1] * m.shape[2], m.shape[3])
        return m
    a2, e2, t2 = as2d(a), as2d(e), as2d(t)
    slices = min(a2.shape[0], 4)
    small = a2.shape[1] <= _GRID_LIMIT and a2.shape[2] <= _GRID_LIMIT
    def clean(m: np.ndarray) -> list[list[float | None]]:
        return [[None if not np.isfinite(v) else float(v) for v in row] for row in m]
    def cleanf(m: np.ndarray) -> list[list[float | str]]:
        return [[(repr(float(v)) if not np.isfinite(v) else float(v)) for v in row] for row in m]
    out: dict[str, Any] = {"layout": "per (n, c) slice; 3-D outputs as (D*H, W)", "slices": []}
    for i in range(slices):
        with np.errstate(invalid="ignore"):
            err = np.abs(a2[i] - e2[i])
            bad = ~(err <= t2[i]) & ~(np.isnan(a2[i]) & np.isnan(e2[i])) & ~(a2[i] == e2[i])
        if small:
            out["slices"].append({"index": i, "actual": cleanf(a2[i]), "expected": cleanf(e2[i]),
                                  "bad": bad.astype(int).tolist()})
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(t2[i] > 0, err / t2[i], np.where(err > 0, np.inf, 0.0))
            # Downsample to at most 64x64 cells by max-pooling the error/tolerance ratio.
            h, w_ = ratio.shape
            fh, fw = -(-h // 64), -(-w_ // 64)
            pad = np.full((fh * -(-h // fh), fw * -(-w_ // fw)), 0.0)
            pad[:h, :w_] = np.nan_to_num(ratio, nan=np.inf, posinf=1e9)
            pooled = pad.reshape(pad.shape[0] // fh, fh, pad.shape[1] // fw, fw).max(axis=(1, 3))
            out["slices"].append({"index": i, "heatmap": clean(pooled), "cell": [fh, fw],
                                  "shape": [h, w_]})
    out["small"] = small
    return out
