"""Floating dtypes under test, their NumPy representations and unit roundoffs."""

from __future__ import annotations

import ml_dtypes
import numpy as np

DTYPE_NAMES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")

_NUMPY: dict[str, np.dtype] = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype for a dtype name (bfloat16 via ml_dtypes)."""
    return _NUMPY[name]


def finfo(name: str) -> ml_dtypes.finfo:
    """Machine limits of the dtype (``ml_dtypes.finfo`` also covers bfloat16)."""
    return ml_dtypes.finfo(_NUMPY[name])  # type: ignore[no-untyped-call]  # ml_dtypes' finfo is unannotated


def unit_roundoff(name: str) -> float:
    """u = 2**-p for a p-bit significand (round to nearest): half of machine epsilon."""
    return float(finfo(name).eps) / 2.0


def round_to(array: np.ndarray, name: str) -> np.ndarray:
    """Round a float64 array to the dtype and back to float64 (what a cast does: beyond the
    dtype's range that is ±Inf, IEEE 754 overflow, so NumPy's overflow warning is silenced)."""
    with np.errstate(over="ignore"):
        return np.asarray(array, dtype=np.float64).astype(_NUMPY[name]).astype(np.float64)
