"""String padding (``padding: valid | same | same_upper | same_lower``): one definition per word.

A case may give ``padding`` as one of these strings instead of explicit pads. The suite
resolves the string, per spatial axis, into the canonical convention (docs/case-format.md: a
``(begin, end)`` crop of the full scatter output of length ``f = (in-1)*s + d*(k-1) + 1``,
then ``output_padding`` elements at the far end) with the functions below; the reference,
tolerance model and explicit-pad adapters use the resolved pairs, and an adapter whose API
takes the string passes the string (that native path is what is tested).

Notation per axis: ``n`` input size, ``k`` kernel size, ``s`` stride, ``d`` dilation,
``k_eff = d*(k-1) + 1`` (the dilated kernel), ``op`` the case's ``output_padding``.
Every function returns ``(begin, end, output_padding)`` in the canonical convention; the
output size is ``f - begin - end + output_padding``.

Where the frameworks use one word for different things the definition chosen is stated in
each function with its source; a framework that differs is a finding or ``unsupported``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from convt_conformance.model.spec import PadPairs

AxisPads = tuple[int, int, int]  # (begin, end, output_padding) in the canonical convention


def _k_eff(k: int, d: int) -> int:
    return d * (k - 1) + 1


def valid(n: int, k: int, s: int, d: int, op: int) -> AxisPads:
    """``valid``: no crop; ``out = (n-1)*s + k_eff + op``; pads ``(0, 0)``, ``op`` as given.

    Sources: ONNX ConvTranspose (onnx/defs/nn/defs.cc: ``auto_pad`` VALID = pads 0,
    ``output_shape = s*(n-1) + op + k_eff``); TensorFlow ``tf.nn.conv{n}d_transpose`` with
    ``padding='VALID'`` and ``output_shape`` ``(n-1)*s + k_eff + op`` (VALID accepts any output
    size ``o`` with ``ceil((o - k_eff + 1)/s) == n``, i.e. ``op < s``; nn_ops.py); Keras with an
    explicit ``output_padding`` (keras/src/backend/common/backend_utils.py
    ``_convert_conv_transpose_padding_args_from_keras_to_jax``: ``left = k_eff-1``,
    ``right = k_eff-1+op`` on the stride-dilated input, i.e. no crop).

    Different definitions of the same word (findings, not this one): Keras with
    ``output_padding=None`` and JAX ``lax.conv_transpose(padding='VALID')``
    (jax/_src/lax/convolution.py ``_conv_transpose_padding``: ``pad_len = k_eff + s - 2 +
    max(k_eff - s, 0)``, ``pad_a = k_eff - 1``) give ``out = (n-1)*s + max(k_eff, s)``: they
    append ``s - k_eff`` extra elements when the stride exceeds the dilated kernel."""
    return 0, 0, op


def same(n: int, k: int, s: int, d: int, op: int) -> AxisPads:
    """``same`` (TensorFlow/Keras/JAX 'SAME'): ``out = n*s``; crop ``total = k_eff + op - s``,
    ``begin = total // 2``, ``end = total - begin`` (the odd element cut at the end). When
    ``total < 0`` (the dilated kernel plus op is shorter than the stride) nothing is cut and the
    missing ``-total`` elements are appended at the far end: pads ``(0, 0)``, output_padding
    ``s - k_eff``.

    Sources: TF's SAME for the forward conv of the output (nn_ops.py / the conv2d docs:
    ``pad_total = max((out_fwd-1)*s + k_eff - in_fwd, 0)``, ``pad_before = pad_total // 2``)
    applied to ``output_shape = n*s``; JAX ``_conv_transpose_padding('SAME')`` (``pad_len =
    k_eff + s - 2``, ``pad_a = k_eff - 1`` if ``s > k_eff - 1`` else ``ceil(pad_len / 2)``, which is
    the same crop); Keras ``padding='same', output_padding=None``
    (``_convert_conv_transpose_padding_args_from_keras_to_jax``: ``pad_len = s + k_eff - 2``,
    ``left = min(ceil(pad_len/2), k_eff-1)``). With ``op > 0`` the crop is ONNX's (the size stays
    ``n*s``, op moves the crop: onnx/reference/ops/op_conv_transpose.py ``total_padding``).

    Different definitions (findings or unsupported): Keras with an explicit ``output_padding``
    means ``out = (n-1)*s + k_eff % 2 + op`` (``pad_len = k_eff + k_eff%2 - 2 + op``), not ``n*s``;
    TF and JAX have no output_padding under SAME; ONNX SAME_UPPER/LOWER split a negative total
    into a leading extension (see :func:`same_upper`)."""
    total = _k_eff(k, d) + op - s
    if total < 0:
        return 0, 0, s - _k_eff(k, d)
    return total // 2, total - total // 2, op


def _same_split(n: int, k: int, s: int, d: int, op: int, upper: bool) -> AxisPads:
    total = _k_eff(k, d) + op - s  # ONNX: s*(n-1) + op + k_eff - output_shape, output_shape = n*s
    begin = total // 2 if upper else total - total // 2
    end = total - begin
    if begin < 0:
        raise ValueError(
            f"{'same_upper' if upper else 'same_lower'} resolves to begin pad {begin} (total {total} = "
            f"k_eff {_k_eff(k, d)} + output_padding {op} - stride {s}): a leading extension, which "
            "canonical (begin, end) crops cannot express")
    if end < 0:
        return begin, 0, op - end
    return begin, end, op


def same_upper(n: int, k: int, s: int, d: int, op: int) -> AxisPads:
    """ONNX ``auto_pad: SAME_UPPER``: ``out = n*s``; ``total = s*(n-1) + op + k_eff - n*s``;
    ``begin = total // 2``, ``end = total - begin`` (onnx/defs/nn/defs.cc ConvTranspose,
    onnx/reference/ops/op_conv_transpose.py). Equals :func:`same` wherever ``total >= 0``; for
    ``total < 0`` ONNX's floor division gives a negative begin (a leading extension), which the
    canonical format cannot express: such a configuration is invalid (ValueError)."""
    return _same_split(n, k, s, d, op, upper=True)


def same_lower(n: int, k: int, s: int, d: int, op: int) -> AxisPads:
    """ONNX ``auto_pad: SAME_LOWER``: as :func:`same_upper` but ``begin = total - total // 2``,
    ``end = total // 2`` (the odd element cut at the beginning). ``total = -1`` resolves to one
    appended element (pads (0, 0), op + 1); ``total <= -2`` is inexpressible (ValueError)."""
    return _same_split(n, k, s, d, op, upper=False)


MODES: dict[str, Callable[[int, int, int, int, int], AxisPads]] = {
    "valid": valid, "same": same, "same_upper": same_upper, "same_lower": same_lower,
}


@dataclass(frozen=True)
class Resolution:
    """A string resolved for one case: canonical pads and output_padding, and the output size."""

    mode: str
    padding: PadPairs
    output_padding: tuple[int, ...]
    out_spatial: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "padding": [list(p) for p in self.padding],
                "output_padding": list(self.output_padding), "out_spatial": list(self.out_spatial)}


def resolve(mode: str, in_spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
            dilation: Sequence[int], output_padding: Sequence[int]) -> Resolution:
    """Resolve ``mode`` per axis (ValueError with the axis when a mode is inexpressible)."""
    fn = MODES[mode]
    pads, ops, outs = [], [], []
    for ax, (n, k, s, d, op) in enumerate(zip(in_spatial, kernel, stride, dilation, output_padding)):
        try:
            b, e, o = fn(n, k, s, d, op)
        except ValueError as exc:
            raise ValueError(f"axis {ax}: {exc}") from None
        pads.append((b, e))
        ops.append(o)
        outs.append((n - 1) * s + _k_eff(k, d) - b - e + o)
    return Resolution(mode, tuple(pads), tuple(ops), tuple(outs))


def resolve_case_padding(value: object, in_spatial: Sequence[int], kernel: Sequence[int],
                         stride: Sequence[int], dilation: Sequence[int], output_padding: Sequence[int]
                         ) -> tuple[Resolution | None, str | None]:
    """The loader's hook: ``(resolution, None)`` for a string ``value``, ``(None, None)`` for
    explicit pads, ``(None, why)`` when the string cannot be resolved for these shapes."""
    if not isinstance(value, str):
        return None, None
    r = len(in_spatial)
    if any(len(v) != r for v in (kernel, stride, dilation, output_padding)):
        return None, f"padding {value!r} cannot be resolved: per-axis lengths differ from the {r} spatial axes"
    try:
        return resolve(value, in_spatial, kernel, stride, dilation, output_padding), None
    except ValueError as exc:
        return None, f"padding {value!r}: {exc}"
