"""Output-range semantics (README "Output range semantics"): overflow rounded as IEEE 754 does,
both roundings accepted near the overflow threshold and only there, Inf where the exact value is
finite fails, subnormal flushes are their own failure kind, order-dependent partial-sum overflow.

Values are derived from each dtype's limits (``finfo``), not written out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from convt_conformance.adapters import get_adapter
from convt_conformance.checking.check import apply_known, run_check
from convt_conformance.checking.compare import compare, overflow_threshold, rounded_expected
from convt_conformance.checking.tolerance import partial_sums_may_overflow
from convt_conformance.library import CASES_DIR, KNOWN_FILE
from convt_conformance.loading.cases import load_cases
from convt_conformance.loading.known import KnownDisagreement, load_known
from convt_conformance.loading.scope import parse_versions
from convt_conformance.model.dtypes import finfo
from convt_conformance.model.record import CheckRecord
from convt_conformance.model.status import FailureKind, Status
from tests.conftest import framework_available

DTYPES = ("float16", "bfloat16", "float32")
RANGE_CASES = [c for c in load_cases([CASES_DIR / "edge" / "output_range.yaml"]).cases]


def _limits(dtype: str) -> tuple[float, float, float]:
    fi = finfo(dtype)
    return float(fi.max), overflow_threshold(dtype), float(fi.tiny)


@pytest.mark.parametrize("dtype", DTYPES)
def test_threshold_is_where_ieee_rounding_switches_to_inf(dtype):
    mx, t, _ = _limits(dtype)
    assert mx < t
    assert np.isinf(rounded_expected(np.array([t * (1 + 1e-12)]), dtype)).all()
    assert rounded_expected(np.array([mx + (t - mx) / 2]), dtype)[0] == mx


@pytest.mark.parametrize("dtype", DTYPES)
def test_far_overflow_expects_inf_of_the_exact_sign(dtype):
    _, t, _ = _limits(dtype)
    exact = np.array([4 * t, -4 * t])
    tol = np.full(2, t * 1e-3)
    assert compare(np.array([np.inf, -np.inf]), exact, tol, dtype).ok
    wrong_sign = compare(np.array([np.inf, np.inf]), exact, tol, dtype)
    assert not wrong_sign.ok and wrong_sign.kind == "nonfinite"
    finite = compare(np.array([float(finfo(dtype).max), -np.inf]), exact, tol, dtype)
    assert not finite.ok and finite.kind == "nonfinite"
    assert f"overflows {dtype}" in finite.message and "index (0,)" in finite.message


@pytest.mark.parametrize("dtype", DTYPES)
def test_near_threshold_both_roundings_are_accepted(dtype):
    mx, t, _ = _limits(dtype)
    tol = np.array([(t - mx) * 4])
    for exact in (mx, t, t + (t - mx)):  # below, at and above the threshold, all within tol
        e = np.array([exact])
        assert compare(np.array([mx]), e, tol, dtype).ok, exact
        res = compare(np.array([np.inf]), e, tol, dtype)
        assert res.ok and "overflow threshold" in res.message, exact
        assert compare(np.array([-mx]), -e, tol, dtype).ok
        assert compare(np.array([-np.inf]), -e, tol, dtype).ok
        assert not compare(np.array([-np.inf]), e, tol, dtype).ok  # the sign still counts
        assert not compare(np.array([np.nan]), e, tol, dtype).ok


@pytest.mark.parametrize("dtype", DTYPES)
def test_inf_far_below_the_threshold_fails_and_says_the_exact_value_is_finite(dtype):
    mx, t, _ = _limits(dtype)
    tol = np.array([(t - mx) * 4])
    exact = np.array([t - 3 * tol[0]])  # outside the band: must be finite
    res = compare(np.array([np.inf]), exact, tol, dtype)
    assert not res.ok and res.kind == "nonfinite"
    assert "is finite" in res.message
    above = np.array([t + 3 * tol[0]])  # outside the band above: must be Inf
    res = compare(np.array([mx]), above, tol, dtype)
    assert not res.ok and res.kind == "nonfinite"


@pytest.mark.parametrize("dtype", DTYPES)
def test_order_dependent_partial_sums_accept_nonfinite_only_where_marked(dtype):
    exact, tol = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    actual = np.array([np.inf, np.nan])
    marked = compare(actual, exact, tol, dtype, order_dependent=np.array([True, True]))
    assert marked.ok and "order-dependent" in marked.message
    unmarked = compare(actual, exact, tol, dtype, order_dependent=np.array([True, False]))
    assert not unmarked.ok and unmarked.kind == "nonfinite" and unmarked.worst_index == [1]
    # a finite output there must still be within tolerance
    assert not compare(np.array([5.0, 0.0]), exact, tol, dtype, order_dependent=np.array([True, True])).ok


def test_partial_sums_may_overflow_only_beyond_the_accumulators_range():
    f32max = float(finfo("float32").max)
    mag = np.array([f32max / 2, f32max * 2])
    assert partial_sums_may_overflow(mag, "float16").tolist() == [False, True]
    assert partial_sums_may_overflow(mag, "float64").tolist() == [False, False]


@pytest.mark.parametrize("dtype", DTYPES)
def test_flushed_subnormal_output_is_its_own_kind(dtype):
    tiny = float(finfo(dtype).tiny)
    sub = float(finfo(dtype).smallest_subnormal)
    exact = np.array([8 * sub, 1.0])
    floor = 2 * tiny  # the model's n*tiny: zero is within tol only through it
    tol = np.array([floor + 1e-3 * 8 * sub, floor + 1e-3])
    correct = rounded_expected(exact, dtype)
    assert compare(correct, exact, tol, dtype, floor=floor).ok
    res = compare(np.array([0.0, 1.0]), exact, tol, dtype, floor=floor)
    assert not res.ok and res.kind == "subnormal-flush" and res.worst_index == [0]
    assert "flushed to zero" in res.message
    # where the rounding-error bound itself allows zero, zero is no flush
    loose = np.array([floor + 16 * sub, floor + 1e-3])
    assert compare(np.array([0.0, 1.0]), exact, loose, dtype, floor=floor).ok
    # a value failure elsewhere is reported first (the worse finding)
    res = compare(np.array([0.0, 2.0]), exact, tol, dtype, floor=floor)
    assert res.kind == "value"


def test_subnormal_flush_is_matched_by_a_known_disagreement_of_that_kind():
    rec = CheckRecord(case="edge-range-subnormal", adapter="x", api="a", device="cpu", dtype="float32",
                      precision="strict", status=Status.FAIL, failure_kind=FailureKind.SUBNORMAL_FLUSH)
    scope, _ = parse_versions({"numpy": ">=1"})
    assert scope is not None
    entry = dict(id="e1", case="edge-range-subnormal", adapter="x", api="*", device="*", dtype="*", precision="*",
                 versions=scope, reason="FTZ")
    other = dataclasses.replace(rec)
    apply_known(other, [KnownDisagreement(outcomes=("fail/value",), **entry)])
    assert other.status == "fail"
    apply_known(rec, [KnownDisagreement(outcomes=("fail/subnormal-flush",), **entry)])
    assert rec.status == "xfail" and (rec.known or {})["reason"] == "FTZ"


def test_range_cases_cover_every_dtype_and_each_kind_of_edge():
    assert RANGE_CASES and all({"edge", "range"} <= set(c.tags) for c in RANGE_CASES)
    ids = " ".join(c.id for c in RANGE_CASES)
    for what in ("overflow", "threshold", "accumulator", "subnormal"):
        assert what in ids
    assert set(DTYPES) <= {d for c in RANGE_CASES for d in c.dtypes}


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_ieee_rounding_frameworks_pass_every_range_case(name):
    """The reference (float64, rounded to the dtype by NumPy) and torch on CPU round as IEEE
    754 requires, overflow and gradual underflow included: every range case passes for them,
    except torch's float16 tap sums (a known disagreement about accumulation, not rounding) and,
    on CPUs where oneDNN runs torch's bfloat16 with AVX512_BF16 instructions, the flushes of those
    (entries with `when:`)."""
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    known, problems = load_known(KNOWN_FILE)
    assert not problems
    a = get_adapter(name)
    a.configure("strict")
    ran, xfails = 0, set()
    for case in RANGE_CASES:
        for api in a.apis:
            if not a.applies(case, api):
                continue
            for dtype in case.dtypes:
                rec = run_check(case, a, api, "cpu", dtype, "strict", known)
                assert rec["status"] in ("pass", "xfail"), (case.id, api, dtype, rec["message"])
                if rec["status"] == "xfail" and not known[rec["known"]["entry"]].when:
                    xfails.add(case.id)  # (an entry with `when:` is one CPU kind's: oneDNN's bf16 kernels flush)
                ran += 1
    assert ran >= len(RANGE_CASES)
    # gradient columns: torch's bfloat16 weight gradient of the threshold case is a finding of its own
    # (and the autocast path on the scaled-subnormal case: its bf16 kernel sums taps in bf16)
    assert xfails <= {"edge-range-f16-partial-sums-taps", "edge-range-bf16-threshold",
                      "edge-range-subnormal-inputs-scaled"}, xfails
    if name == "numpy":
        assert not xfails
