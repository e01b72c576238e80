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
- ``u_out * R``: the conv result rounded to the dtype before a separate bias add (only when the
  case has a bias: without one the output is rounded once, which ``u_out * |y|`` covers, and a
  framework that rounds partial sums to the 16-bit dtype along the way must not hide in it);
- ``u_out * |y|``: the final rounding of the output to the dtype;
- ``n * tiny_acc + sub/2``: products that flush to zero below the accumulator's smallest normal
  number (float32's for the 16-bit dtypes, whose products are formed in float32), plus half the
  dtype's smallest subnormal: the absolute rounding error of an output in the subnormal range,
  where ``u_out * |y|`` no longer bounds it. (Was ``n * tiny`` of the dtype: 0.1 absolute for a
  1600-term float16 sum, which hid float16 accumulation entirely.) A framework that flushes
  subnormal outputs to zero errs by up to the dtype's ``tiny`` there and fails;
- precision ``default`` on a GPU with float32 allows TF32 inputs (10-bit mantissa):
  ``+ 2 * 2**-11 * R`` for rounding both operands.

Inputs are rounded to the dtype before the reference is computed, so input rounding is
not an error of the framework. A case's ``tolerance: {atol, rtol}`` replaces the model.

Gradients (convt_conformance/checking/gradient_check.py) use the same model with their own term count
(:func:`terms_per_gradient`) and ``R`` = the same gradient formula run on ``|x|, |w|, |g|``:

- ``grad_input[n, c, i] = sum_{o in group, t} w[c, o, t] * g[n, o, i*s + d*t - pb]``: each
  (channel, tap) pair reaches exactly ONE output position from a given input position (the
  scatter writes ``x[i] * w[t]`` at ``i*s + d*t - pb`` only), so at most ``C_out/g * prod(K)``
  products, whatever the stride (cropped positions only remove terms);
- ``grad_weight[c, o, t] = sum_{n, i} x[n, c, i] * g[n, o, i*s + d*t - pb]``: at most
  ``N * prod(in_spatial)`` products (one per batch element and input position);
- ``grad_bias[o] = sum_{n, j} g[n, o, j]``: ``N * prod(out_spatial)`` terms (additions only).

A case's ``tolerance`` override is written for its forward output and is not applied to gradients.
Output range (README "Output range semantics"; applied in ``convt_conformance.checking.compare``):

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
  flush inside the accumulation: ``n * tiny_acc + sub/2`` (float32's tiny for the 16-bit dtypes,
  plus half the dtype's smallest subnormal), no longer ``n * tiny`` of the output dtype (``n *
  6.1e-5`` for float16 hid float16 accumulation and subnormal values alike); the torch and
  TensorFlow CPU float16/bfloat16 checks this makes fail are findings (their 16-bit partial sums
  over taps and channels), in known_disagreements.yaml.
- **Accumulator overflow.** Every partial sum of one output is bounded by ``R`` (the sum of the
  magnitudes of its terms). Where ``R`` is below the accumulator's largest finite value (always,
  for float16 inputs accumulated in float32) no summation order can overflow, so ±Inf/NaN where
  the exact result is finite is a ``nonfinite`` failure whose message says the exact value is
  finite (a framework keeping float16 partial sums shows up so). Where ``R`` exceeds it
  (:func:`partial_sums_may_overflow`), IEEE arithmetic overflows for some order and not for
  others; the order is unspecified, so ±Inf or NaN there is accepted and counted in the message
  ("order-dependent"), and a finite output must still be within tolerance.
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
``input_rounding`` coefficient. The relative bound ``|fl_c(v) - v| <= u_c |v|`` holds for values
in ``c``'s normal range only: a nonzero input below ``tiny(c)`` (a float32 subnormal is one in
bfloat16 too, with fewer digits) rounds with an absolute error up to ``eta = sub(c)/2``, half
``c``'s smallest subnormal. Each product then errs by at most ``eta (|x| + |w|)`` more, so where
such an input exists the tolerance grows by ``input_floor = eta (1 + gamma(2, u_c)) (n (max|x| +
max|w|) + 1)`` (the 1: the bias; kept apart from ``floor``, the flushed-products floor that
compare() leaves out when it looks for a flush) (``edge-range-subnormal-inputs-scaled`` under autocast(bfloat16): 1e-40 is
9.18e-41 in bfloat16, times 2^30 an 8% error that IS the path's rounding); a framework that
reads subnormal inputs as zero errs by ``|x w|``, far beyond it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.model.dtypes import finfo, unit_roundoff

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

TF32_UNIT_ROUNDOFF = 2.0**-11


def terms_per_output(in_channels: int, groups: int, kernel: tuple[int, ...]) -> int:
    """How many products are summed into one output element (at most)."""
    return max(in_channels // max(groups, 1), 1) * int(np.prod(kernel))


def terms_per_gradient(case: Case, quantity: str) -> int:
    """Products (terms) summed into one element of the gradient ``quantity`` of ``case`` (at most):
    see the module docstring for the derivation. At least 1 (an empty sum still rounds nothing)."""
    geom = case.geometry
    if quantity == "grad_input":
        n = (case.out_channels // max(case.groups, 1)) * int(np.prod(geom.kernel))
    elif quantity == "grad_weight":
        n = int(case.input.shape[0]) * int(np.prod(geom.in_spatial))
    elif quantity == "grad_bias":
        n = int(case.input.shape[0]) * int(np.prod(geom.out_spatial))
    else:
        raise ValueError(f"case {case.id}: unknown gradient {quantity!r}")
    return max(n, 1)


def derived_tolerance(magnitude: np.ndarray, reference: np.ndarray, *, dtype: str, n_terms: int,
                      device: str, precision: str, override: dict[str, Any] | None = None, bias_added: bool = True,
                      compute_dtype: str | None = None,
                      inputs: tuple[np.ndarray | None, ...] = ()) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-element absolute tolerance and a description of how it was derived.

    ``magnitude``: convT(|x|, |w|) + |b| in float64; ``reference``: the float64 result on
    inputs rounded to ``dtype``; ``compute_dtype``: the dtype the framework computed in when
    it is not ``dtype`` (its input rounding is then charged; module docstring); ``inputs``: the
    tensors (x, w, b) the framework was given, for the charge of inputs below the compute
    dtype's normal range (module docstring; none given: none charged).
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
    coeff = gamma + (u_out if bias_added else 0.0)
    tf32 = precision == "default" and device == "gpu" and dtype == "float32"
    if tf32:
        coeff += 2 * TF32_UNIT_ROUNDOFF
    if input_rounding:
        coeff = coeff * (1.0 + input_rounding) + input_rounding
    floor = n_terms * float(finfo(acc).tiny) + float(finfo(dtype).smallest_subnormal) / 2
    # not part of `floor` (compare()'s flushed-products floor, left out when it looks for a flush):
    # an input that rounds to zero in the compute dtype is that path's rounding, not a flush
    input_floor = _subnormal_input_floor(inputs, dtype, n_terms, input_rounding) if input_rounding else 0.0
    tol = coeff * magnitude + u_out * np.abs(reference) + floor + input_floor
    info = {
        "model": "gamma(n,u_acc)*R" + (" + u_out*R" if bias_added else "") + " + u_out*|y| + n*tiny_acc + sub/2"
                 + (" + 2*u_tf32*R" if tf32 else ""),
        "n_terms": n_terms, "u_acc": u_acc, "accumulator": acc, "u_out": u_out,
        "coefficient_of_R": coeff, "floor": floor, "tf32_allowed": tf32,
        "max": float(np.max(tol)) if tol.size else 0.0,
    }
    if input_rounding:
        info.update(model="(gamma(n,u_acc) + u_out)*(1+gamma(2,u_c))*R + gamma(2,u_c)*R + u_out*|y| + n*tiny"
                          " (u_acc, u_out, tiny of the compute dtype c)",
                    dtype_under_test=under_test, compute_dtype=dtype, input_rounding=input_rounding)
        if input_floor:
            info.update(model=f"{info['model']} + input_floor", input_floor=input_floor)
    return tol, info


def _subnormal_input_floor(inputs: tuple[np.ndarray | None, ...], compute_dtype: str, n_terms: int,
                           input_rounding: float) -> float:
    """``eta (1 + gamma(2, u_c)) (n (max|x| + max|w|) + 1)`` where an input (x, w or b) has a nonzero
    value below ``tiny`` of the compute dtype (rounded there with an absolute error up to ``eta``,
    half its smallest subnormal; module docstring), else 0."""
    arrays = [np.abs(np.asarray(a, dtype=np.float64)) for a in inputs if a is not None]
    tiny = float(finfo(compute_dtype).tiny)
    if not any(np.any((a > 0) & (a < tiny)) for a in arrays):
        return 0.0
    peaks = [float(np.max(a[np.isfinite(a)], initial=0.0)) for a in arrays[:2]]  # x and w
    eta = float(finfo(compute_dtype).smallest_subnormal) / 2
    return eta * (1.0 + input_rounding) * (n_terms * sum(peaks) + 1.0)


def accumulator_dtype(dtype: str) -> str:
    """The dtype partial sums are assumed to be kept in: float32 for the 16-bit dtypes."""
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def partial_sums_may_overflow(magnitude: np.ndarray, dtype: str) -> np.ndarray:
    """Elements whose partial sums can overflow the accumulator in some summation order:
    ``R = convT(|x|, |w|) + |b|`` above the accumulator's largest finite value."""
    return np.asarray(magnitude, dtype=np.float64) > float(finfo(accumulator_dtype(dtype)).max)
