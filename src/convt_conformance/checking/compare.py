"""Comparison of a framework's output with the expected one (numpy.testing-style messages).

Output-range semantics (README "Output range semantics"; decisions in ``convt_conformance.checking.tolerance``):
``expected`` is the exact result (float64). Where NaN and ±Inf must be is decided on the exact
result *rounded to the dtype under test* (IEEE 754 round-to-nearest, overflow to ±Inf included),
while finite elements are judged against the float64 value with the per-element tolerance:

- overflow: exact beyond the dtype's range -> ±Inf expected; a finite output there fails;
- near the threshold (``|exact| - tol < T <= |exact| + tol``, ``T`` = max finite + half its ULP,
  where rounding switches to Inf) either the finite value within tolerance or ±Inf of the exact
  result's sign is accepted;
- elsewhere an Inf/NaN where the exact result is finite fails (``nonfinite``, the message says the
  exact value is finite), unless ``order_dependent`` marks the element: then a partial sum may
  overflow the accumulator for some summation order, so ±Inf / NaN are accepted and counted;
- an output flushed to zero where the correctly rounded result is a nonzero subnormal, and the
  rounding-error bound (``tol - floor``) excludes zero, is ``subnormal-flush`` (its own kind).
  It is reported after ``nonfinite`` and ``value`` failures (a flushed element is within ``tol``
  through the floor, so it never hides behind a value failure of another element).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convt_conformance.model.dtypes import finfo, numpy_dtype, round_to
from convt_conformance.model.status import FailureKind

_INT = {2: np.int16, 4: np.int32, 8: np.int64}


@dataclass
class Comparison:
    ok: bool
    kind: FailureKind | None  # None when ok, else shape, nonfinite, value or subnormal-flush
    message: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    max_ulp: int | None = None
    mismatched: int = 0
    worst_index: list[int] | None = None


def ordered_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    """Map floats of ``dtype`` to integers whose difference is the ULP distance (+0 == -0)."""
    nd = numpy_dtype(dtype)
    with np.errstate(over="ignore"):
        bits = np.asarray(values, dtype=np.float64).astype(nd).view(_INT[nd.itemsize]).astype(np.int64)
    magnitude_mask = np.int64((1 << (8 * nd.itemsize - 1)) - 1)
    return np.where(bits < 0, -(bits & magnitude_mask), bits)


def ulp_distance(actual: np.ndarray, expected: np.ndarray, dtype: str) -> np.ndarray:
    """Element-wise ULP distance in ``dtype`` (expected is first rounded to it)."""
    ulps: np.ndarray = np.abs(ordered_bits(actual, dtype) - ordered_bits(expected, dtype))
    return ulps


def overflow_threshold(dtype: str) -> float:
    """``T = max + ulp(max)/2``: finite values of magnitude >= T round to ±Inf (ties to even)."""
    fi = finfo(dtype)
    mx, eps = float(fi.max), float(fi.eps)
    return mx + mx * eps / (2.0 - eps) / 2.0


def rounded_expected(expected: np.ndarray, dtype: str) -> np.ndarray:
    """The exact result rounded to ``dtype`` (as float64): where its NaN/±Inf must be."""
    with np.errstate(over="ignore", invalid="ignore"):
        return round_to(expected, dtype)


def overflow_band(expected: np.ndarray, tol: np.ndarray, dtype: str) -> np.ndarray:
    """Finite exact elements within tolerance of the overflow threshold: finite or ±Inf accepted."""
    t = overflow_threshold(dtype)
    mag = np.abs(np.where(np.isfinite(expected), expected, 0.0))
    band: np.ndarray = np.isfinite(expected) & (mag - tol < t) & (mag + tol >= t)
    return band


def subnormal_flushes(actual: np.ndarray, expected: np.ndarray, tol: np.ndarray, dtype: str,
                      floor: float) -> np.ndarray:
    """Outputs that are ±0 where the correctly rounded result is a nonzero subnormal of ``dtype``
    and the rounding-error bound without the flushed-products floor excludes zero."""
    r = rounded_expected(expected, dtype)
    sub = np.isfinite(r) & (r != 0) & (np.abs(r) < float(finfo(dtype).tiny))
    with np.errstate(invalid="ignore"):
        flushed: np.ndarray = sub & (actual == 0) & (np.abs(expected) > np.maximum(tol - floor, 0.0))
    return flushed


def _nonfinite_message(actual: np.ndarray, expected: np.ndarray, rounded: np.ndarray, bad: np.ndarray,
                       dtype: str) -> str:
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    a, e, r = actual[idx], expected[idx], rounded[idx]
    msg = (f"NaN/Inf positions differ at {int(bad.sum())} / {actual.size} elements; first at index "
           f"{idx}: actual {a!r}, expected {r!r}")
    if np.isfinite(e) and not np.isfinite(r):
        msg += f" (exact {e!r} overflows {dtype}: IEEE rounding gives {r!r})"
    elif np.isfinite(e) and not np.isfinite(a):
        msg += (f" (the exact value {e!r} is finite and representable in {dtype}, no partial sum can "
                f"overflow: accumulator overflow or wrong non-finite propagation)")
    return msg


def compare(actual: np.ndarray, expected: np.ndarray, tol: np.ndarray, dtype: str, *,
            floor: float = 0.0, order_dependent: np.ndarray | None = None) -> Comparison:
    """Shape exactly; NaN/±Inf where the exact result rounded to ``dtype`` has them (the overflow
    band and ``order_dependent`` elements excepted, see the module docstring); finite values
    within ``tol`` of the float64 exact value per element; subnormal flushes reported apart.

    ``floor``: the part of ``tol`` that allows flushed products (``n*tiny``)."""
    if tuple(actual.shape) != tuple(expected.shape):
        return Comparison(False, FailureKind.SHAPE, f"shape mismatch: actual {list(actual.shape)}, "
                                          f"expected {list(expected.shape)}")
    if actual.size == 0:
        return Comparison(True, None, "empty output, shapes equal", 0.0, 0.0, 0)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), actual.shape)
    rounded = rounded_expected(expected, dtype)
    a_nan, e_nan = np.isnan(actual), np.isnan(rounded)
    a_inf, e_inf = np.isinf(actual), np.isinf(rounded)
    bad_nf = (a_nan != e_nan) | (a_inf != e_inf) | (a_inf & e_inf & (np.sign(actual) != np.sign(rounded)))
    band = overflow_band(expected, tol, dtype)
    band_inf = band & a_inf & (np.sign(actual) == np.sign(expected))
    bad_nf &= ~band_inf & ~(band & np.isfinite(actual))
    loose = np.zeros(actual.shape, bool) if order_dependent is None else (
        bad_nf & order_dependent & np.isfinite(expected) & ~np.isfinite(actual))
    bad_nf &= ~loose
    finite = np.isfinite(actual) & np.isfinite(expected)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        err = np.where(finite, np.abs(actual - expected), 0.0)
        rel = np.where(finite & (expected != 0), err / np.abs(expected), 0.0)
    ulp = np.where(finite, ulp_distance(np.where(finite, actual, 0), np.where(finite, expected, 0), dtype), 0)
    over = finite & (err > tol)
    max_abs = float(err.max())
    res = Comparison(True, None, "", max_abs, float(rel.max()), int(ulp.max()))
    if bad_nf.any():
        res.ok, res.kind = False, FailureKind.NONFINITE
        res.mismatched = int(bad_nf.sum())
        res.worst_index = [int(i) for i in np.argwhere(bad_nf)[0]]
        res.message = _nonfinite_message(actual, expected, rounded, bad_nf, dtype)
        return res
    notes = _range_notes(band_inf, loose, actual)
    if over.any():
        ratio = np.where(over, err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        res.ok, res.kind = False, FailureKind.VALUE
        res.mismatched = int(over.sum())
        res.worst_index = list(idx)
        res.message = (
            f"Mismatched elements: {res.mismatched} / {actual.size} "
            f"({100.0 * res.mismatched / actual.size:.3g}%); worst at index {idx}: "
            f"actual {float(actual[idx])!r}, expected {float(expected[idx])!r}, "
            f"abs diff {float(err[idx]):.6g} > tolerance {float(tol[idx]):.6g}; "
            f"max abs diff {max_abs:.6g}, max rel diff {res.max_rel_err:.6g}, max ULP {res.max_ulp}" + notes
        )
        return res
    flushed = subnormal_flushes(actual, expected, tol, dtype, floor)
    if flushed.any():
        idx = tuple(int(i) for i in np.argwhere(flushed)[0])
        res.ok, res.kind = False, FailureKind.SUBNORMAL_FLUSH
        res.mismatched = int(flushed.sum())
        res.worst_index = list(idx)
        res.message = (f"Subnormal outputs flushed to zero: {res.mismatched} / {actual.size} elements; "
                       f"first at index {idx}: actual {float(actual[idx])!r}, exact {float(expected[idx])!r}, "
                       f"correctly rounded {dtype} {float(rounded[idx])!r} (below the smallest normal "
                       f"{float(finfo(dtype).tiny)!r}); within the value tolerance only through its "
                       f"flushed-products floor {floor:.3g}")
        return res
    res.message = f"max abs diff {max_abs:.3g}, max ULP {res.max_ulp}" + notes
    return res


def _range_notes(band_inf: np.ndarray, loose: np.ndarray, actual: np.ndarray) -> str:
    notes = ""
    if band_inf.any():
        notes += (f"; {int(band_inf.sum())} element(s) within tolerance of the overflow threshold "
                  f"rounded to ±Inf (accepted)")
    if loose.any():
        notes += (f"; {int(loose.sum())} element(s) non-finite where partial sums may overflow the "
                  f"accumulator in some summation order (accepted, order-dependent)")
    return notes
