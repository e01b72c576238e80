"""The mutant catalogue: correct variants and implementations with ONE planted bug each.

Every entry is a function ``f(x, w, b, p, dtype) -> float64 array`` in the canonical
convention (see :mod:`convt_mutants.impl`), called after the adapter's validation (which a
``skip`` set can weaken) and before its rounding of the result to ``dtype``. ``x, w, b``
arrive already rounded to ``dtype`` (as the suite's run hands them to every adapter).

Kinds: ``bug`` (the suite must kill it: a check fails, errors or accepts an invalid case) and
``correct`` (a different but correct program: the suite must never flag it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convt_conformance.model.dtypes import round_to
from convt_mutants import impl
from convt_mutants.impl import Params, accumulator, add_bias, crop

Impl = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", Params, str], np.ndarray]


@dataclass(frozen=True)
class Mutant:
    name: str  # the adapter's API name
    kind: str  # "bug" or "correct"
    family: str  # the bug family (layout, flip, in/out swap, ...)
    what: str  # the planted bug (or, for a correct variant, how it differs)
    func: Impl
    skip_rules: frozenset[str] = frozenset()  # validation rules this implementation forgets
    extra_rule: Callable[[Params], str | None] | None = None  # a spurious refusal
    kernel_rule: Callable[[Params, tuple[int, ...]], str | None] | None = None  # one that needs the kernel
    finite_only: bool = False  # correct only for finite values: unsupported on non-finite cases


def reference_like(x, w, b, p: Params, dtype: str, acc: type = np.float64) -> np.ndarray:
    """The unmutated program: per-tap scatter in ``acc``, crop, bias."""
    full = impl.scatter_taps(x, w, p.stride, p.dilation, p.groups, acc)
    return add_bias(crop(full, p.padding, p.output_padding), b)


# --- correct variants -----------------------------------------------------------------------

def ok_float64_acc(x, w, b, p, dtype):
    return reference_like(x, w, b, p, dtype, np.float64)


def ok_float32_acc(x, w, b, p, dtype):
    return reference_like(x, w, b, p, dtype, accumulator(dtype))


def ok_reversed_order(x, w, b, p, dtype):
    acc = accumulator(dtype)
    full = impl.scatter_sequential(x, w, p.stride, p.dilation, p.groups, acc, reverse=True)
    return add_bias(crop(full, p.padding, p.output_padding), b)


def ok_pairwise_f32(x, w, b, p, dtype):
    full = impl.scatter_terms(x, w, p.stride, p.dilation, p.groups, accumulator(dtype), "pairwise")
    return add_bias(crop(full, p.padding, p.output_padding), b)


def ok_col2im_gemm(x, w, b, p, dtype):
    full = impl.col2im(x, w, p.stride, p.dilation, p.groups, accumulator(dtype))
    return add_bias(crop(full, p.padding, p.output_padding), b)


def ok_zero_insert(x, w, b, p, dtype):
    return add_bias(impl.zero_insert_correlate(x, w, p), b)


# --- bugs -----------------------------------------------------------------------------------

def bug_layout_reshape(x, w, b, p, dtype):
    y = reference_like(x, w, b, p, dtype)
    return np.moveaxis(y, 1, -1).reshape(y.shape)  # channels-last result "converted" by reshape


def bug_kernel_axes_swapped(x, w, b, p, dtype):
    spatial = tuple(range(2, w.ndim))
    return reference_like(x, w.transpose(0, 1, *spatial[::-1]), b, p, dtype)


def bug_flip(x, w, b, p, dtype):
    return add_bias(impl.zero_insert_correlate(x, w, p, flip=False), b)


def bug_inout_swap(x, w, b, p, dtype):
    cin, cout_g = w.shape[:2]  # reads the weight's memory as (C_out/g, C_in, *K)
    return reference_like(x, w.reshape(cout_g, cin, *w.shape[2:]).swapaxes(0, 1), b, p, dtype)


def bug_pad_side(x, w, b, p, dtype):
    return reference_like(x, w, b, p.with_(padding=tuple((e, b_) for b_, e in p.padding)), dtype)


def bug_pad_symmetric(x, w, b, p, dtype):
    return reference_like(x, w, b, p.with_(padding=tuple((b_, b_) for b_, _ in p.padding)), dtype)


def bug_outpad_front(x, w, b, p, dtype):
    full = impl.scatter_taps(x, w, p.stride, p.dilation, p.groups)
    return add_bias(crop(full, p.padding, p.output_padding, output_padding_first=True), b)


def bug_outpad_zeros(x, w, b, p, dtype):
    full = impl.scatter_taps(x, w, p.stride, p.dilation, p.groups)
    y = crop(full, p.padding, (0,) * len(p.stride))  # output_padding appended as zeros
    y = np.pad(y, [(0, 0), (0, 0), *((0, op) for op in p.output_padding)])
    return add_bias(y, b)


def bug_stride_first_axis(x, w, b, p, dtype):
    return reference_like(x, w, b, p.with_(stride=(p.stride[0],) * len(p.stride)), dtype)


def bug_dilation_first_axis(x, w, b, p, dtype):
    return reference_like(x, w, b, p.with_(dilation=(p.dilation[0],) * len(p.dilation)), dtype)


def bug_axes_reversed(x, w, b, p, dtype):
    q = p.with_(stride=p.stride[::-1], padding=p.padding[::-1], output_padding=p.output_padding[::-1],
                dilation=p.dilation[::-1])  # per-axis lists read as (W, H) instead of (H, W)
    return reference_like(x, w, b, q, dtype)


def _regroup(x, w, p, in_perm, out_perm):
    """Run the correct program on permuted channels: input channel ``in_perm[j]`` plays
    channel ``j``; output channel ``j`` is written to ``out_perm[j]``."""
    full = impl.scatter_taps(x[:, in_perm], w[in_perm], p.stride, p.dilation, p.groups)
    y = np.empty_like(full)
    y[:, out_perm] = full
    return y


def bug_groups_input_interleaved(x, w, b, p, dtype):
    cin, g = x.shape[1], p.groups  # input channel c taken to belong to group c % g
    order = np.array([c for gi in range(g) for c in range(gi, cin, g)], dtype=int)
    full = _regroup(x, w, p, order, np.arange(w.shape[1] * g))
    return add_bias(crop(full, p.padding, p.output_padding), b)


def bug_groups_output_interleaved(x, w, b, p, dtype):
    g, cout_g = p.groups, w.shape[1]  # output (group gi, local o) written to channel o*g + gi
    out_perm = np.array([o * g + gi for gi in range(g) for o in range(cout_g)], dtype=int)
    full = _regroup(x, w, p, np.arange(x.shape[1]), out_perm)
    return add_bias(crop(full, p.padding, p.output_padding), b)


def bug_bias_missing(x, w, b, p, dtype):
    return reference_like(x, w, None, p, dtype)


def bug_bias_unreached(x, w, b, p, dtype):
    y = reference_like(x, w, None, p, dtype)
    if b is None:
        return y
    reached = crop(impl.scatter_taps(np.ones_like(x), np.ones_like(w), p.stride, p.dilation, p.groups),
                   p.padding, p.output_padding) > 0  # bias added only where an input landed
    return np.where(reached, add_bias(y, b), y)


def bug_acc_lowprec(x, w, b, p, dtype):
    low = dtype if dtype in ("float16", "bfloat16") else None
    rnd = (lambda a: round_to(a, low)) if low else None
    full = impl.scatter_sequential(x, w, p.stride, p.dilation, p.groups, np.float64, round_each=rnd)
    y = add_bias(crop(full, p.padding, p.output_padding), b)
    return y if rnd is None else rnd(y)


def bug_input_bf16(x, w, b, p, dtype):
    r = lambda a: None if a is None else round_to(a, "bfloat16")
    return reference_like(r(x), r(w), r(b), p, dtype)


def bug_nonfinite_zeroed(x, w, b, p, dtype):
    return reference_like(np.nan_to_num(x), np.nan_to_num(w), b, p, dtype)


def bug_nan_terms_skipped(x, w, b, p, dtype):
    full = impl.scatter_terms(x, w, p.stride, p.dilation, p.groups, np.float64, "nansum")
    return add_bias(crop(full, p.padding, p.output_padding), b)


def bug_zero_insert_nonfinite(x, w, b, p, dtype):
    return ok_zero_insert(x, w, b, p, dtype)  # without the finite-only declaration: 0*Inf = NaN


def bug_batch_first_only(x, w, b, p, dtype):
    y = reference_like(x[:1], w, b, p, dtype)
    return np.repeat(y, x.shape[0], axis=0)


def bug_zero_batch_crash(x, w, b, p, dtype):
    return np.stack([reference_like(x[i:i + 1], w, b, p, dtype)[0] for i in range(x.shape[0])])


def bug_zero_insert_negative_pad(x, w, b, p, dtype):
    return add_bias(impl.zero_insert_correlate(x, w, p, pad_with_np_pad=True), b)


def bug_skip_zero_taps(x, w, b, p, dtype):
    full = impl.scatter_sequential(x, w, p.stride, p.dilation, p.groups, skip_zero="weight")
    return add_bias(crop(full, p.padding, p.output_padding), b)


def bug_skip_zero_inputs(x, w, b, p, dtype):
    full = impl.scatter_sequential(x, w, p.stride, p.dilation, p.groups, skip_zero="input")
    return add_bias(crop(full, p.padding, p.output_padding), b)


def bug_outpad_ge_stride_zeros(x, w, b, p, dtype):
    """output_padding >= stride (valid while < dilation): only ``stride - 1`` extra elements are
    computed, the rest appended as zeros (onnxruntime 1.22-1.27, fixed by refusing, #29446)."""
    full = impl.scatter_taps(x, w, p.stride, p.dilation, p.groups)
    computed = tuple(min(op, s - 1) for op, s in zip(p.output_padding, p.stride))
    y = crop(full, p.padding, computed)
    y = np.pad(y, [(0, 0), (0, 0), *((0, op - c) for op, c in zip(p.output_padding, computed))])
    return add_bias(y, b)


def bug_pad_odd_split(x, w, b, p, dtype):
    """An odd total padding split with the larger half at the end read as at the begin (keras'
    torch backend, 'same' with stride > 1 and an odd k_eff - s: shifted values, keras #22876)."""
    q = p.with_(padding=tuple((e, b_) if abs(e - b_) == 1 else (b_, e) for b_, e in p.padding))
    return reference_like(x, w, b, q, dtype)


def _kernel1(p: Params, kernel: tuple[int, ...]) -> str | None:
    return "kernel size 1 is not supported" if 1 in kernel else None


def _outpad_ge_stride(p: Params) -> str | None:
    bad = [ax for ax, (op, s) in enumerate(zip(p.output_padding, p.stride)) if op >= s]
    return f"output_padding must be smaller than stride (axes {bad})" if bad else None


def _m(name, kind, family, what, func, **kw) -> Mutant:
    return Mutant(name, kind, family, what, func, **kw)


MUTANTS: tuple[Mutant, ...] = (
    _m("ok_float64_acc", "correct", "accumulation", "scatter, float64 accumulation, one rounding", ok_float64_acc),
    _m("ok_float32_acc", "correct", "accumulation", "scatter per tap in float32 (float64 for float64)", ok_float32_acc),
    _m("ok_reversed_order", "correct", "summation order",
       "one term at a time, taps and channels reversed, float32 accumulator", ok_reversed_order),
    _m("ok_pairwise_f32", "correct", "summation order", "all terms stacked, pairwise sum in float32", ok_pairwise_f32),
    _m("ok_col2im_gemm", "correct", "formulation", "GEMM (W^T X) + col2im, float32", ok_col2im_gemm),
    _m("ok_zero_insert", "correct", "formulation", "zero-insert + flip + correlate, float64; unsupported on "
       "non-finite cases (its inserted zeros times Inf give NaN)", ok_zero_insert, finite_only=True),
    _m("bug_layout_reshape", "bug", "layout", "channels-last result turned channels-first by reshape",
       bug_layout_reshape),
    _m("bug_kernel_axes_swapped", "bug", "layout", "kernel spatial axes read in reversed order",
       bug_kernel_axes_swapped),
    _m("bug_flip", "bug", "flip", "zero-insert form without the kernel flip", bug_flip),
    _m("bug_inout_swap", "bug", "in/out swap", "weight memory read as (C_out/g, C_in, *K)", bug_inout_swap),
    _m("bug_pad_side", "bug", "padding side", "padding pairs applied as (end, begin)", bug_pad_side),
    _m("bug_pad_symmetric", "bug", "padding side", "begin padding used for both ends", bug_pad_symmetric),
    _m("bug_outpad_front", "bug", "output_padding", "output_padding elements added at the start",
       bug_outpad_front),
    _m("bug_outpad_zeros", "bug", "output_padding", "output_padding elements appended as zeros, not "
       "computed", bug_outpad_zeros),
    _m("bug_stride_first_axis", "bug", "stride per axis", "the first axis' stride used on every axis",
       bug_stride_first_axis),
    _m("bug_dilation_first_axis", "bug", "dilation per axis", "the first axis' dilation used on every axis",
       bug_dilation_first_axis),
    _m("bug_axes_reversed", "bug", "stride/dilation per axis", "per-axis stride, padding, output_padding "
       "and dilation read in reversed axis order", bug_axes_reversed),
    _m("bug_groups_input_interleaved", "bug", "group mapping", "input channel c assigned to group c % g",
       bug_groups_input_interleaved),
    _m("bug_groups_output_interleaved", "bug", "group mapping", "group gi's output o written to channel "
       "o*g + gi", bug_groups_output_interleaved),
    _m("bug_bias_missing", "bug", "bias", "bias ignored", bug_bias_missing),
    _m("bug_bias_unreached", "bug", "bias", "bias added only where some input lands", bug_bias_unreached),
    _m("bug_acc_lowprec", "bug", "accumulation precision", "16-bit dtypes accumulated in 16 bits "
       "(every product and partial sum rounded)", bug_acc_lowprec),
    _m("bug_input_bf16", "bug", "input rounding", "inputs rounded to bfloat16 whatever the dtype",
       bug_input_bf16),
    _m("bug_nonfinite_zeroed", "bug", "NaN/Inf propagation", "inputs passed through nan_to_num",
       bug_nonfinite_zeroed),
    _m("bug_nan_terms_skipped", "bug", "NaN/Inf propagation", "NaN terms skipped (nansum)",
       bug_nan_terms_skipped),
    _m("bug_zero_insert_nonfinite", "bug", "NaN/Inf propagation", "zero-insert form on non-finite "
       "values: inserted/padded zeros times Inf or NaN give NaN", bug_zero_insert_nonfinite),
    _m("bug_batch_first_only", "bug", "batch handling", "the first sample's output repeated",
       bug_batch_first_only),
    _m("bug_zero_batch_crash", "bug", "batch handling", "per-sample loop + np.stack: fails on N = 0",
       bug_zero_batch_crash),
    _m("bug_no_check_output_padding", "bug", "missing validation", "accepts output_padding >= "
       "max(stride, dilation)", ok_float64_acc, skip_rules=frozenset({"output_padding"})),
    _m("bug_no_check_negative_padding", "bug", "missing validation", "accepts negative padding (extends "
       "the output)", ok_float64_acc, skip_rules=frozenset({"padding"})),
    _m("bug_no_check_groups", "bug", "missing validation", "accepts C_in not divisible by groups "
       "(drops the remainder)", ok_float64_acc, skip_rules=frozenset({"groups"})),
    _m("bug_no_check_output_size", "bug", "missing validation", "accepts a zero or negative output size "
       "(returns an empty output)", ok_float64_acc, skip_rules=frozenset({"output_size"})),
    _m("bug_no_check_zero_spatial", "bug", "missing validation", "accepts a zero spatial input extent",
       ok_float64_acc, skip_rules=frozenset({"spatial"})),
    _m("bug_reject_outpad_ge_stride", "bug", "spurious validation", "rejects output_padding >= stride "
       "(valid while < dilation)", ok_float64_acc, extra_rule=_outpad_ge_stride),
    _m("bug_zero_insert_negative_pad", "bug", "spurious validation", "zero-insert form via np.pad: "
       "refuses padding > dilation*(kernel-1)", bug_zero_insert_negative_pad),
)

MUTANTS += (
    _m("bug_skip_zero_taps", "bug", "zero skipping", "terms of weight taps that are exactly zero skipped "
       "(NaN x 0 and Inf x 0 lost)", bug_skip_zero_taps),
    _m("bug_skip_zero_inputs", "bug", "zero skipping", "terms of inputs that are exactly zero skipped "
       "(0 x Inf and 0 x NaN lost)", bug_skip_zero_inputs),
    _m("bug_reject_kernel1", "bug", "spurious validation", "rejects a kernel of size 1 on any axis "
       "(valid)", ok_float64_acc, kernel_rule=_kernel1),
    _m("bug_outpad_ge_stride_zeros", "bug", "output_padding", "output_padding >= stride (< dilation): "
       "elements past stride - 1 appended as zeros (onnxruntime #29446)", bug_outpad_ge_stride_zeros),
    _m("bug_pad_odd_split", "bug", "padding side", "padding pairs one apart read swapped (keras #22876: "
       "'same' with an odd total)", bug_pad_odd_split),
)

BY_NAME: dict[str, Mutant] = {m.name: m for m in MUTANTS}
