"""LiteRT's padding rule for TRANSPOSE_CONV and CONV_3D_TRANSPOSE, and which cases it can carry.

TFLite's transposed convolutions have no pads: only ``padding`` SAME or VALID (TransposeConvOptions,
Conv3DOptions) and an ``output_shape`` input, from which the kernels derive the pads the way the
forward convolution would (tflite/kernels/padding.h ``ComputePaddingHeightWidth``, the output
size in the forward convolution's input slot): with ``k_eff = d*(k-1) + 1``, the forward output
size ``ceil(out/s)`` (SAME) or ``ceil((out - k_eff + 1)/s)`` (VALID) must equal the input size
(the kernels check it: "unused_out_height != SizeOfDimension(input, ...)"), and the pads are
``total = max((in-1)*s + k_eff - out, 0)``, ``begin = total // 2``, ``end = total - begin`` for
SAME, none for VALID. So an output size ``out`` and a word carry exactly the canonical pads
``(begin, end)`` and ``output_padding`` that give ``out = (in-1)*s + k_eff - begin - end +
output_padding`` when:

- VALID: every pad is 0 and ``output_padding < s`` (the rows beyond the full output at the end);
- SAME: ``ceil(out/s) == in`` and the pads equal SAME's split of ``total`` (the larger half at the
  end), as TensorFlow resolves SAME for ``tf.nn.conv{n}d_transpose``.

These rules decide only which cases a column applies to; LiteRT then resolves the padding itself,
and what it does is checked. Explicit pads that neither word gives are unsupported: the converter
refuses ``tf.nn.conv2d_transpose`` with explicit pads (module constant ``EXPLICIT_REFUSAL``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

#: what tf.lite.TFLiteConverter.convert says of tf.nn.conv2d_transpose with explicit pads
#: (Conv2DBackpropInput with padding="EXPLICIT"), tensorflow 2.21.0
EXPLICIT_REFUSAL = ("ConverterError: 'tf.Conv2DBackpropInput' op is neither a custom op nor a flex op "
                    "(Some ops are not supported by the native TFLite runtime ... TF Select ops: "
                    "Conv2DBackpropInput ... padding = \"EXPLICIT\")")


def per_axis_ok(case: Case) -> bool:
    """Whether every per-axis parameter has one value per spatial axis (an invalid case may not)."""
    g = case.geometry
    return (len(case.input.shape) >= 3 and len(case.weight.shape) == len(case.input.shape)
            and all(len(v) == g.rank for v in (g.stride, g.padding, g.output_padding, g.dilation)))


def same_pads(n: int, out: int, k: int, s: int, d: int) -> tuple[int, int] | None:
    """The (begin, end) pads SAME resolves to for an output of size ``out`` from an input of size
    ``n`` (kernel ``k``, stride ``s``, dilation ``d``); None where ``ceil(out/s) != n``."""
    if s < 1 or -(-out // s) != n:
        return None
    total = max((n - 1) * s + d * (k - 1) + 1 - out, 0)
    return total // 2, total - total // 2


def padding_for(case: Case) -> tuple[str | None, list[int] | None, str]:
    """``(word, output spatial size, why)``: TFLite's padding word (``'SAME'``/``'VALID'``) and the
    output_shape's spatial part that carry the case's pads and output_padding, or ``(None, None,
    why)`` when neither does. The case's own padding word (``valid``; ``same``/``same_upper``
    without output_padding) is passed by its TF name."""
    if not per_axis_ok(case):
        return None, None, ("the case's per-axis parameters do not have one value per spatial axis: "
                            "no output_shape can be written")
    g = case.geometry
    out = [int(o) for o in g.out_spatial]
    mode = str(case.padding_mode or "").lower()
    if mode == "valid":
        return "VALID", out, "padding='VALID' (the case's `valid`); output_padding folded into output_shape"
    if mode in ("same", "same_upper") and not any(case.mode_output_padding or ()):
        return "SAME", out, f"padding='SAME' (the case's `{mode}`); output_shape = the case's output size"
    if all(tuple(p) == (0, 0) for p in g.padding):
        return "VALID", out, "padding='VALID' (every pad 0); output_padding folded into output_shape"
    if all(same_pads(n, o, k, s, d) == tuple(p) for n, o, k, s, d, p in
           zip(g.in_spatial, out, g.kernel, g.stride, g.dilation, g.padding)):
        return "SAME", out, "padding='SAME' (the canonical pads are SAME's split for this output_shape)"
    shown = [list(p) for p in g.padding]
    return None, None, (f"pads {shown} are neither VALID's (all 0) nor SAME's split for output size {out}: "
                        "TFLite's TRANSPOSE_CONV / CONV_3D_TRANSPOSE take padding SAME or VALID only; "
                        f"the converter refuses explicit pads ({EXPLICIT_REFUSAL})")
