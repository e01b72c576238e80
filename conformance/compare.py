"""Comparison of a framework's output with the expected one (numpy.testing-style messages)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.dtypes import numpy_dtype

_INT = {2: np.int16, 4: np.int32, 8: np.int64}


@dataclass
class Comparison:
    ok: bool
    kind: str  # "" when ok, else "shape", "nonfinite" or "value"
    message: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    max_ulp: int | None = None
    mismatched: int = 0
    worst_index: list[int] | None = None


def ordered_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    """Map floats of ``dtype`` to integers whose difference is the ULP distance (+0 == -0)."""
    nd = numpy_dtype(dtype)
    bits = np.asarray(values, dtype=np.float64).astype(nd).view(_INT[nd.itemsize]).astype(np.int64)
    magnitude_mask = np.int64((1 << (8 * nd.itemsize - 1)) - 1)
    return np.where(bits < 0, -(bits & magnitude_mask), bits)


def ulp_distance(actual: np.ndarray, expected: np.ndarray, dtype: str) -> np.ndarray:
    """Element-wise ULP distance in ``dtype`` (expected is first rounded to it)."""
    return np.abs(ordered_bits(actual, dtype) - ordered_bits(expected, dtype))


def compare(actual: np.ndarray, expected: np.ndarray, tol: np.ndarray, dtype: str) -> Comparison:
    """Shape exactly; NaN/±Inf at the same positions; finite values within ``tol`` per element."""
    if tuple(actual.shape) != tuple(expected.shape):
        return Comparison(False, "shape", f"shape mismatch: actual {list(actual.shape)}, "
                                          f"expected {list(expected.shape)}")
    if actual.size == 0:
        return Comparison(True, "", "empty output, shapes equal", 0.0, 0.0, 0)
    a_nan, e_nan = np.isnan(actual), np.isnan(expected)
    a_inf, e_inf = np.isinf(actual), np.isinf(expected)
    bad_nf = (a_nan != e_nan) | (a_inf != e_inf) | (a_inf & e_inf & (np.sign(actual) != np.sign(expected)))
    finite = np.isfinite(actual) & np.isfinite(expected)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        err = np.where(finite, np.abs(actual - expected), 0.0)
        rel = np.where(finite & (expected != 0), err / np.abs(expected), 0.0)
    ulp = np.where(finite, ulp_distance(np.where(finite, actual, 0), np.where(finite, expected, 0), dtype), 0)
    over = finite & (err > tol)
    max_abs = float(err.max())
    res = Comparison(True, "", "", max_abs, float(rel.max()), int(ulp.max()))
    if bad_nf.any():
        idx = tuple(int(i) for i in np.argwhere(bad_nf)[0])
        res.ok, res.kind = False, "nonfinite"
        res.mismatched = int(bad_nf.sum())
        res.worst_index = list(idx)
        res.message = (f"NaN/Inf positions differ at {res.mismatched} / {actual.size} elements; "
                       f"first at index {idx}: actual {actual[idx]!r}, expected {expected[idx]!r}")
        return res
    if over.any():
        ratio = np.where(over, err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        res.ok, res.kind = False, "value"
        res.mismatched = int(over.sum())
        res.worst_index = list(idx)
        res.message = (
            f"Mismatched elements: {res.mismatched} / {actual.size} "
            f"({100.0 * res.mismatched / actual.size:.3g}%); worst at index {idx}: "
            f"actual {float(actual[idx])!r}, expected {float(expected[idx])!r}, "
            f"abs diff {float(err[idx]):.6g} > tolerance {float(tol[idx]):.6g}; "
            f"max abs diff {max_abs:.6g}, max rel diff {res.max_rel_err:.6g}, max ULP {res.max_ulp}"
        )
        return res
    res.message = f"max abs diff {max_abs:.3g}, max ULP {res.max_ulp}"
    return res
