"""Per-element tolerance derived from the dtype and the magnitude of what was summed.

Model (documented in README, "Tolerance model"): each output element ``y`` is a sum of
``n = C_in/groups * prod(K)`` products (plus the bias). With ``R = convT(|x|, |w|) + |b|``
(the reference run on absolute values: the sum of the magnitudes of every term) the
standard dot-product error bound gives

    |y_framework - y_exact| <= gamma(n, u_acc) * R + u_out * R + u_out * |y| + n * tiny

- ``gamma(n, u) = n*u / (1 - n*u)``: worst-case rounding of the n-term accumulation;
- ``u_acc``: unit roundoff of the accumulator: the dtype itself for float32/float64,
  float32 for float16/bfloat16 (their products are exact in float32 and every framework
  here accumulates 16-bit convolutions in float32; one that does not will fail, a finding);
- ``u_out * R``: the conv result rounded to the dtype before a separate bias add;
- ``u_out * |y|``: the final rounding of the output to the dtype;
- ``n * tiny``: products that flush to zero below the smallest normal number;
- precision ``default`` on a GPU with float32 allows TF32 inputs (10-bit mantissa):
  ``+ 2 * 2**-11 * R`` for rounding both operands.

Inputs are rounded to the dtype before the reference is computed, so input rounding is
not an error of the framework. A case's ``tolerance: {atol, rtol}`` replaces the model.

Output range (README "Output range semantics"; applied in ``conformance.compare``):

- **Overflow.** The expected output is the exact result rounded to the dtype under test, as
  IEEE 754 round-to-nearest does it: ``|exact| >= max + ulp(max)/2`` gives ±Inf (float16:
  65520; bfloat16 ~3.3961e38; float32 ~3.4028e38). Where the tolerance interval
  ``[|exact| - tol, |exact| + tol]`` straddles that threshold, the framework's pre-rounding error
  may take it either way: the finite value within tolerance and ±Inf (the exact result's sign)
  are both accepted, and only there.
- **Gradual underflow.** A nonzero exact result below the smallest normal must come out as the
  correctly rounded subnormal (within the value tolerance). An output that is ±0 where the
  correctly rounded result is a nonzero subnormal and the rounding-error bound *without* the
  ``n*tiny`` floor excludes zero is a flush-to-zero of the OUTPUT (FTZ, or DAZ of subnormal
  inputs): failure kind ``subnormal-flush``, a finding of its own (a known disagreement keys on
  it with ``kind: subnormal-flush``), never a silent pass. The floor still covers products that
  flush inside the accumulation. (For float16 the floor, ``n * 6.1e-5``, is far above what
  float32 accumulation needs, ``n * tiny_f32 + 2**-25``, so float16 subnormal VALUES are hardly
  checked; tightening it made 13 float16 sweep checks of torch and TensorFlow CPU fail the
  float32-accumulation bound, explained by their float16 partial sums over taps (torch) and
  channels (TF): README "Output range semantics", left open.)
- **Accumulator overflow.** Every partial sum of one output is bounded by ``R`` (the sum of the
  magnitudes of its terms). Where ``R`` is below the accumulator's largest finite value (always,
  for float16 inputs accumulated in float32) no summation order can overflow, so ±Inf/NaN where
  the exact result is finite is a ``nonfinite`` failure whose message says the exact value is
  finite (a framework keeping float16 partial sums shows up so). Where ``R`` exceeds it
  (:func:`partial_sums_may_overflow`), IEEE arithmetic overflows for some order and not for
  others; the order is unspecified, so ±Inf or NaN there is accepted and counted in the message
  ("order-dependent"), and a finite output must still be within tolerance.
"""

from __future__ import annotations

import numpy as np

from conformance.dtypes import finfo, unit_roundoff

TF32_UNIT_ROUNDOFF = 2.0**-11


def terms_per_output(in_channels: int, groups: int, kernel: tuple[int, ...]) -> int:
    """How many products are summed into one output element (at most)."""
    return max(in_channels // max(groups, 1), 1) * int(np.prod(kernel))


def derived_tolerance(magnitude: np.ndarray, reference: np.ndarray, *, dtype: str, n_terms: int,
                      device: str, precision: str, override: dict | None = None
                      ) -> tuple[np.ndarray, dict]:
    """Per-element absolute tolerance and a description of how it was derived.

    ``magnitude``: convT(|x|, |w|) + |b| in float64; ``reference``: the float64 result.
    """
    if override:
        atol = float(override.get("atol", 0.0))
        rtol = float(override.get("rtol", 0.0))
        return atol + rtol * np.abs(reference), {"model": "case override", "atol": atol, "rtol": rtol}
    u_out = unit_roundoff(dtype)
    acc = "float32" if dtype in ("float16", "bfloat16") else dtype
    u_acc = unit_roundoff(acc)
    nu = n_terms * u_acc
    gamma = nu / (1.0 - nu) if nu < 0.5 else 2 * nu
    coeff = gamma + u_out
    tf32 = precision == "default" and device == "gpu" and dtype == "float32"
    if tf32:
        coeff += 2 * TF32_UNIT_ROUNDOFF
    floor = n_terms * float(finfo(dtype).tiny)
    tol = coeff * magnitude + u_out * np.abs(reference) + floor
    info = {
        "model": "gamma(n,u_acc)*R + u_out*R + u_out*|y| + n*tiny" + (" + 2*u_tf32*R" if tf32 else ""),
        "n_terms": n_terms, "u_acc": u_acc, "accumulator": acc, "u_out": u_out,
        "coefficient_of_R": coeff, "floor": floor, "tf32_allowed": tf32,
        "max": float(np.max(tol)) if tol.size else 0.0,
    }
    return tol, info


def accumulator_dtype(dtype: str) -> str:
    """The dtype partial sums are assumed to be kept in: float32 for the 16-bit dtypes."""
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def partial_sums_may_overflow(magnitude: np.ndarray, dtype: str) -> np.ndarray:
    """Elements whose partial sums can overflow the accumulator in some summation order:
    ``R = convT(|x|, |w|) + |b|`` above the accumulator's largest finite value."""
    return np.asarray(magnitude, dtype=np.float64) > float(finfo(accumulator_dtype(dtype)).max)
