"""OpenVINO's padding rules for ConvolutionBackpropData-1 / GroupConvolutionBackpropData-1 (the
grouped op "has the same attributes"), as its specification states them
(docs/.../operation-specs/convolution/convolution-backprop-data-1.rst), and which of the
adapter's padding forms can carry a case's canonical pads:

- explicit (``auto_pad`` explicit, the default): ``pads_begin`` / ``pads_end`` are cut from the
  full output, ``output_padding`` adds at its far end: the canonical pairs unchanged;
- ``auto_pad`` without an ``output_shape`` input: "if auto_pads != None: pads_begin[i] = 0,
  pads_end[i] = 0", so ``valid``, ``same_upper`` and ``same_lower`` all mean zero pads there;
- an ``output_shape`` input: "pads_begin and pads_end are ignored, and auto_pad defines how to
  distribute padding amount": ``total = s*(in-1) + d*(k-1) + 1 - output_shape + output_padding``;
  ``auto_pad != SAME_UPPER``: ``(total // 2, total - total // 2)`` (the larger half at the END);
  ``SAME_UPPER``: ``(total - total // 2, total // 2)`` (the larger half at the BEGIN).

These rules decide only which cases a column applies to (the case's pads must be what the rule
gives); OpenVINO then resolves the attributes itself, and what it does is checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

#: a case's padding word -> OpenVINO's auto_pad value of the same name (where the pads are zero)
_WORDS = {"valid": "valid", "same": "same_upper", "same_upper": "same_upper", "same_lower": "same_lower"}


def _pairs(case: Case) -> list[list[int]]:
    return [list(p) for p in case.padding]


def per_axis_ok(case: Case) -> bool:
    """Whether every per-axis parameter has one value per spatial axis (an invalid case may not)."""
    g = case.geometry
    return (len(case.input.shape) >= 3 and len(case.weight.shape) == len(case.input.shape)
            and all(len(v) == g.rank for v in (g.stride, g.padding, g.output_padding, g.dilation)))


def auto_pad_for(case: Case) -> tuple[str | None, str]:
    """The ``auto_pad`` value (no ``output_shape`` input) that carries the case's pads, and why (or
    why none): zero pads only; a padding word of the case whose pads resolve to zero is passed by
    its own name."""
    if not per_axis_ok(case):
        return None, "the case's per-axis parameters do not have one value per spatial axis: no auto_pad applies"
    if any(p != (0, 0) for p in case.padding):
        return None, (f"OpenVINO's auto_pad without an output_shape input sets every pad to 0 (ConvolutionBackpropData-1: "
                      f"'if auto_pads != None: pads_begin[i] = 0; pads_end[i] = 0'), so it cannot carry pads "
                      f"{_pairs(case)}; the :output_shape column derives pads from an output_shape")
    mode = _WORDS.get(str(case.padding_mode or "").lower())
    if mode is not None:
        return mode, f"auto_pad {mode!r} (the case's padding word {case.padding_mode!r}, which resolves to zero pads)"
    return "valid", "auto_pad 'valid' (every pad is 0)"


def output_shape_pads(n: int, k: int, s: int, d: int, op: int, out: int, auto_pad: str) -> tuple[int, int]:
    """The (begin, end) pads the specification derives on one axis from an ``output_shape`` entry
    ``out`` (input size ``n``, kernel ``k``, stride ``s``, dilation ``d``, output_padding ``op``)."""
    total = s * (n - 1) + d * (k - 1) + 1 - out + op
    if auto_pad == "same_upper":
        return total - total // 2, total // 2
    return total // 2, total - total // 2


def output_shape_for(case: Case) -> tuple[str | None, list[int] | None, str]:
    """``(auto_pad, output_shape, why)`` for the ``:output_shape`` column: ``output_shape`` the
    case's output spatial size and ``auto_pad`` whose rule derives exactly the case's pads
    ('explicit', the default, preferred; else 'same_upper'); ``(None, None, why)`` when neither does."""
    if not per_axis_ok(case):
        return None, None, "the case's per-axis parameters do not have one value per spatial axis: no output_shape"
    g = case.geometry
    out = [int(o) for o in g.out_spatial]
    derived = {}
    for mode in ("explicit", "same_upper"):
        derived[mode] = [output_shape_pads(n, k, s, d, op, o, mode) for n, k, s, d, op, o in
                         zip(g.in_spatial, g.kernel, g.stride, g.dilation, g.output_padding, out)]
        if derived[mode] == list(g.padding):
            return mode, out, (f"output_shape {out} with auto_pad {mode!r}: the specification derives pads "
                               f"{_pairs(case)} (pads_begin/pads_end not given: it ignores them)")
    show = {m: [list(p) for p in v] for m, v in derived.items()}
    return None, None, (f"output_shape {out} cannot carry pads {_pairs(case)}: the specification derives "
                        f"{show['explicit']} with auto_pad explicit/same_lower/valid (larger half at the end) and "
                        f"{show['same_upper']} with same_upper (larger half at the begin)")
