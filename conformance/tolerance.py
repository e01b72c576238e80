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

**Compute dtype other than the dtype under test** (``compute_dtype``; e.g. torch autocast:
float32 inputs, bfloat16 compute). The framework itself rounds x, w, b to the compute dtype
``c`` before the sum, so the reference (on inputs rounded to the dtype under test) differs
from the exact sum of what was multiplied, and that input rounding IS what the path does:
it is charged. Each product: ``|fl_c(x) fl_c(w) - x w| <= ((1+u_c)^2 - 1)|x w| <= gamma(2, u_c)|x w|``,
the bias ``|fl_c(b) - b| <= u_c |b|``; summed over the terms, ``<= gamma(2, u_c) * R``. The
sum of the rounded terms has magnitude ``<= (1 + gamma(2, u_c)) R``, so its accumulation and
output-rounding terms are those of ``c`` on that magnitude:

    tol = (gamma(n, u_acc(c)) + u_out(c)) * (1 + gamma(2, u_c)) * R + gamma(2, u_c) * R
          + u_out(c) * |y| + n * tiny(c)

(``u_out(c) * (|y_c| - |y|)`` is of order ``u_out(c) gamma(2, u_c) R``, inside the product
term). For bfloat16 compute that is about ``2 * 2**-8 * R`` more than the bfloat16 model: a
float32 result within float32 tolerance passes, a bfloat16-rounded float32 result fails the
float32 column and passes this one. The record's ``tolerance`` says ``compute_dtype`` and the
``input_rounding`` coefficient.
"""

from __future__ import annotations

import numpy as np

from conformance.dtypes import finfo, unit_roundoff

TF32_UNIT_ROUNDOFF = 2.0**-11


def terms_per_output(in_channels: int, groups: int, kernel: tuple[int, ...]) -> int:
    """How many products are summed into one output element (at most)."""
    return max(in_channels // max(groups, 1), 1) * int(np.prod(kernel))


def derived_tolerance(magnitude: np.ndarray, reference: np.ndarray, *, dtype: str, n_terms: int,
                      device: str, precision: str, override: dict | None = None,
                      compute_dtype: str | None = None) -> tuple[np.ndarray, dict]:
    """Per-element absolute tolerance and a description of how it was derived.

    ``magnitude``: convT(|x|, |w|) + |b| in float64; ``reference``: the float64 result on
    inputs rounded to ``dtype``; ``compute_dtype``: the dtype the framework computed in when
    it is not ``dtype`` (its input rounding is then charged; module docstring).
    """
    if override:
        atol = float(override.get("atol", 0.0))
        rtol = float(override.get("rtol", 0.0))
        return atol + rtol * np.abs(reference), {"model": "case override", "atol": atol, "rtol": rtol}
    under_test = dtype
    input_rounding = 0.0
    if compute_dtype and compute_dtype != dtype:
        dtype = compute_dtype  # accumulation, output rounding and floor follow the compute dtype
        input_rounding = 2 * unit_roundoff(dtype) / (1.0 - 2 * unit_roundoff(dtype))  # gamma(2, u_c)
    u_out = unit_roundoff(dtype)
    acc = "float32" if dtype in ("float16", "bfloat16") else dtype
    u_acc = unit_roundoff(acc)
    nu = n_terms * u_acc
    gamma = nu / (1.0 - nu) if nu < 0.5 else 2 * nu
    coeff = gamma + u_out
    tf32 = precision == "default" and device == "gpu" and dtype == "float32"
    if tf32:
        coeff += 2 * TF32_UNIT_ROUNDOFF
    if input_rounding:
        coeff = coeff * (1.0 + input_rounding) + input_rounding
    floor = n_terms * float(finfo(dtype).tiny)
    tol = coeff * magnitude + u_out * np.abs(reference) + floor
    info = {
        "model": "gamma(n,u_acc)*R + u_out*R + u_out*|y| + n*tiny" + (" + 2*u_tf32*R" if tf32 else ""),
        "n_terms": n_terms, "u_acc": u_acc, "accumulator": acc, "u_out": u_out,
        "coefficient_of_R": coeff, "floor": floor, "tf32_allowed": tf32,
        "max": float(np.max(tol)) if tol.size else 0.0,
    }
    if input_rounding:
        info.update(model="(gamma(n,u_acc) + u_out)*(1+gamma(2,u_c))*R + gamma(2,u_c)*R + u_out*|y| + n*tiny"
                          " (u_acc, u_out, tiny of the compute dtype c)",
                    dtype_under_test=under_test, compute_dtype=dtype, input_rounding=input_rounding)
    return tol, info
