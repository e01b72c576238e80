"""The ONNX padding rules, the node's attributes and the opsets (the one-node model itself and its
runs are convt_conformance/adapters/onnx/calls.py's).

Convention: ONNX's ConvTranspose IS the canonical one for layout and weight: input
``(N, C, *S)``, weight ``W`` of shape ``(C, M/group, *K)``, applied without a flip; optional
bias ``B`` of shape ``(M,)`` as the third input. Padding:

- ``pads = [x1_begin, x2_begin, ..., x1_end, x2_end]`` crops the full scatter output by
  ``begin`` elements at the start and ``end`` at the end of each axis, and ``output_padding``
  adds elements at the end: output size ``s*(in-1) + op + d*(k-1) + 1 - begin - end``. So the
  canonical ``(begin, end)`` pairs and ``output_padding`` map to ``pads``/``output_padding``
  unchanged.
- ``auto_pad`` (onnx/defs/nn/defs.cc, ConvTranspose-22 doc, and
  onnx/reference/ops/op_conv_transpose.py): SAME_UPPER / SAME_LOWER make the output
  ``in * stride``; ``total = s*(in-1) + op + d*(k-1) + 1 - in*s`` is split
  SAME_UPPER: ``(begin, end) = (total // 2, total - total // 2)`` (the extra element cut at the
  end), SAME_LOWER: ``(total - total // 2, total // 2)`` (the extra at the begin). VALID: no pads.
- ``output_shape`` given explicitly (no ``pads``): ``total = s*(in-1) + op + d*(k-1) + 1 -
  output_shape``; ``auto_pad == SAME_UPPER``: ``(total // 2, total - total // 2)``, else (NOTSET,
  SAME_LOWER): ``(total - total // 2, total // 2)`` -- the spec's "Else" branch, so with the
  default NOTSET the larger half is cut at the BEGIN.

These formulas decide only which cases a column applies to (the case's canonical pads must be
what the rule resolves to); the runtimes then resolve the attributes themselves. Measured with
onnxruntime 1.31.1: ORT follows all three rules; onnx.reference 1.23.2 follows the auto_pad
rules but, given ``output_shape`` without ``auto_pad``, uses zero pads (see README "ONNX").
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.model.dtypes import numpy_dtype

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

OLD_OPSET = 11  # ConvTranspose-11: the output_shape/pads wording of today; ConvTranspose-22 added bfloat16

_AUTO_PAD = {"same": "SAME_UPPER", "same_upper": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}


def np_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype ORT and onnx.reference take for ``dtype`` (bfloat16 via ml_dtypes)."""
    return numpy_dtype(dtype)


def same_pads(n: int, k: int, s: int, d: int, op: int, mode: str) -> tuple[int, int] | None:
    """The (begin, end) crop that ``auto_pad=mode`` (SAME_UPPER / SAME_LOWER) resolves to for one
    axis of input size ``n``; None when the total is negative (runtimes then differ: ORT clamps
    it to 0, onnx.reference does not)."""
    total = s * (n - 1) + op + d * (k - 1) + 1 - n * s
    if total < 0:
        return None
    return (total // 2, total - total // 2) if mode == "SAME_UPPER" else (total - total // 2, total // 2)


def output_shape_pads(n: int, k: int, s: int, d: int, op: int, out: int, mode: str = "NOTSET"
                      ) -> tuple[int, int] | None:
    """The (begin, end) crop the spec derives from an explicit ``output_shape`` ``out`` on one
    axis (auto_pad ``mode``); None when the total is negative."""
    total = s * (n - 1) + op + d * (k - 1) + 1 - out
    if total < 0:
        return None
    return (total // 2, total - total // 2) if mode == "SAME_UPPER" else (total - total // 2, total // 2)


def auto_pad_for(case: Case) -> tuple[str | None, str]:
    """The ``auto_pad`` value that expresses the case's canonical pads, and why (or why none).

    A string ``padding_mode`` on the case (same | valid | same_upper | same_lower) is passed
    natively (``same`` -> SAME_UPPER, TF/Keras' split); otherwise VALID when every pad is zero,
    else SAME_UPPER or SAME_LOWER when it resolves to exactly the case's pairs on every axis."""
    mode = getattr(case, "padding_mode", None)
    if isinstance(mode, str):
        if mode.lower() in _AUTO_PAD:
            return _AUTO_PAD[mode.lower()], f"the case's padding mode {mode!r}"
        return None, f"padding mode {mode!r} has no ONNX auto_pad equivalent"
    g = case.geometry
    if all(p == (0, 0) for p in g.padding):
        return "VALID", "'VALID' (all pads zero)"
    resolved = {}
    for m in ("SAME_UPPER", "SAME_LOWER"):
        resolved[m] = [same_pads(n, k, s, d, op, m) for n, k, s, d, op in
                       zip(g.in_spatial, g.kernel, g.stride, g.dilation, g.output_padding)]
        if all(r == p for r, p in zip(resolved[m], g.padding)):
            return m, f"'{m}' (resolves to the case's pads)"
    show = {m: [list(r) if r else None for r in v] for m, v in resolved.items()}
    return None, (f"auto_pad cannot express pads {[list(p) for p in g.padding]}: SAME_UPPER resolves to "
                  f"{show['SAME_UPPER']}, SAME_LOWER to {show['SAME_LOWER']}, VALID to zeros")


def output_shape_for(case: Case) -> tuple[list[int] | None, str]:
    """``output_shape`` (the case's output spatial size) when the spec's rule for it (auto_pad
    NOTSET, output_padding passed too) derives exactly the case's pads; else None and why."""
    g = case.geometry
    out = list(g.out_spatial)
    derived = [output_shape_pads(n, k, s, d, op, o) for n, k, s, d, op, o in
               zip(g.in_spatial, g.kernel, g.stride, g.dilation, g.output_padding, out)]
    if all(r == p for r, p in zip(derived, g.padding)):
        return out, f"output_shape {out}: the spec's NOTSET rule derives pads {[list(p) for p in g.padding]}"
    return None, (f"output_shape {out} derives pads {[list(r) if r else None for r in derived]} by the spec's "
                  f"NOTSET rule (larger half at the begin), not the case's {[list(p) for p in g.padding]}")


def attributes(case: Case, form: str, rank: int, kernel: tuple[int, ...]) -> dict[str, Any]:
    """The ConvTranspose attributes for ``form`` in ``explicit | auto_pad | output_shape``.

    Invalid cases get their hyper-parameters as given (negative pads included): the runtime
    is the one to reject them."""
    pads = [p[0] for p in case.padding] + [p[1] for p in case.padding] if len(case.padding) == rank \
        else [0] * (2 * rank)
    attrs: dict[str, Any] = {"kernel_shape": [int(k) for k in kernel], "strides": list(case.stride),
                             "dilations": list(case.dilation), "output_padding": list(case.output_padding),
                             "group": int(case.groups)}
    if form == "explicit":
        attrs["pads"] = pads
    elif form == "auto_pad":
        mode, _ = auto_pad_for(case)
        attrs["auto_pad"] = mode or "NOTSET"
        if mode is None:
            attrs["pads"] = pads
    elif form == "output_shape":
        shape, _ = output_shape_for(case)
        attrs["output_shape"] = shape if shape is not None else list(case.geometry.out_spatial)
    else:
        raise ValueError(f"unknown ConvTranspose form {form!r}")
    return attrs


@functools.lru_cache(maxsize=64)
def min_ir_version(opset: int) -> int:
    """The smallest IR version a model importing the default domain at ``opset`` needs (what the
    one-node model declares; recorded, so a reproducer declares the same)."""
    from onnx import helper

    return int(helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


def schema_types(opset: int) -> tuple[str, ...]:
    """dtype names ConvTranspose's type constraint T allows at ``opset``."""
    import onnx.defs

    allowed = onnx.defs.get_schema("ConvTranspose", opset).type_constraints[0].allowed_type_strs
    inv = {"tensor(float16)": "float16", "tensor(bfloat16)": "bfloat16", "tensor(float)": "float32",
           "tensor(double)": "float64"}
    return tuple(inv[t] for t in allowed if t in inv)


@functools.lru_cache(maxsize=1)
def latest_onnx_opset() -> int:
    """The newest default-domain opset the installed onnx defines."""
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


@functools.lru_cache(maxsize=1)
def latest_ort_opset() -> int:
    """The newest opset (<= onnx's) that the installed onnxruntime loads a ConvTranspose model
    at: tried from onnx's latest downwards, once per process (a few ms)."""
    from convt_conformance.adapters.onnx.calls import onnxruntime_run

    one = np.ones((1, 1, 1), np.float32)
    for opset in range(latest_onnx_opset(), OLD_OPSET - 1, -1):
        try:
            onnxruntime_run(one, one, None, attributes={"kernel_shape": [1], "pads": [0, 0]}, opset=opset,
                            ir_version=min_ir_version(opset), dtype="float32", device="cpu")
        except Exception:
            continue
        return opset
    return OLD_OPSET
