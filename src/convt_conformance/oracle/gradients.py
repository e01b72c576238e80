"""Reference gradients of the transposed convolution, float64, written from the definition.

Convention (docs/case-format.md, PyTorch's): input ``x`` ``(N, C_in, *S)``, weight ``w``
``(C_in, C_out/groups, *K)`` unflipped, padding per-axis ``(begin, end)`` pairs cut from the full
scatter output, ``output_padding`` at the far end. The forward call (see convt_conformance/oracle/forward.py) is

    y[n, o, j] = b[o] + sum_{c in group(o), t, i : j = i*stride + dilation*t - pad_begin} x[n, c, i] * w[c, o', t]

with ``o' = o - group(o) * C_out/g``. For a cotangent ``g`` of ``y`` (shape of ``y``) and
``L = <g, y>``:

- :func:`grad_input`  ``dL/dx[n, c, i] = sum_{o', t} w[c, o', t] * g[n, o, i*s + d*t - pb]``: the
  forward convolution (cross-correlation) of ``g`` with the same weight, window stride ``stride``,
  same dilation, ``pad_begin`` padding, same groups;
- :func:`grad_weight` ``dL/dw[c, o', t] = sum_{n, i} x[n, c, i] * g[n, o, i*s + d*t - pb]``: per
  group, the sum over batch and input positions of the input times the cotangent shifted by the tap;
- :func:`grad_bias`   ``dL/db[o] = sum_{n, j} g[n, o, j]``.

Every sum runs over the positions the definition pairs, and only those (index ``j`` inside the
output; the cropped and never-reached positions are no terms at all): an Inf or NaN meets no
structural zero. Loops run over kernel taps only. The independent cross-checks (matrix form,
Jacobian, finite differences, adjoint identity) are in tests/test_gradients_reference.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convt_conformance.model.spec import ConvSpec, PadPairs
from convt_conformance.oracle.forward import _prepare, forward_matrix

__all__ = ["GRADIENTS", "grad_bias", "grad_input", "grad_weight", "gradient", "gradient_shape",
           "weight_jacobian_gradient", "matrix_grad_input"]

from convt_conformance.model.apis import GRADIENTS  # noqa: E402 (one list of the quantities)


def _pairs(in_sp: Sequence[int], out_sp: Sequence[int], kernel_tap: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], padding: PadPairs) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """For one kernel tap: per axis the input slice and the matching (strided) output slice of the
    positions ``j = i*s + d*t - pb`` that lie inside the output; None when the tap reaches none."""
    xs, ys = [], []
    for size, out, t, s, d, (pb, _) in zip(in_sp, out_sp, kernel_tap, stride, dilation, padding):
        off = d * t - pb
        lo = max(0, (s - 1 - off) // s)  # smallest i with i*s + off >= 0: ceil(-off / s)
        hi = min(size - 1, (out - 1 - off) // s)  # largest i with i*s + off <= out - 1
        if hi < lo:
            return None
        xs.append(slice(lo, hi + 1))
        j0 = lo * s + off
        ys.append(slice(j0, j0 + s * (hi - lo) + 1, s))
    return tuple(xs), tuple(ys)


def _setup(x: np.ndarray, w: np.ndarray, g: np.ndarray, stride: Sequence[int], padding: PadPairs,
           output_padding: Sequence[int], dilation: Sequence[int], groups: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, ConvSpec]:
    """float64 x, w, g and the validated geometry; ``g`` must have the output's shape."""
    x, w, spec = _prepare(x, w, None, stride, padding, output_padding, dilation, groups)
    g = np.asarray(g, np.float64)
    want = (x.shape[0], w.shape[1] * groups, *spec.out_spatial)
    if g.shape != want:
        raise ValueError(f"cotangent shape {list(g.shape)} != output shape {list(want)}")
    return x, w, g, spec


def grad_input(x: np.ndarray, w: np.ndarray, g: np.ndarray, *, stride: Sequence[int], padding: PadPairs,
               output_padding: Sequence[int], dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """``dL/dx`` ``(N, C_in, *S)`` for cotangent ``g`` ``(N, C_out, *out)``; ``x`` gives the shape only."""
    x, w, g, spec = _setup(x, w, g, stride, padding, output_padding, dilation, groups)
    n, cin = x.shape[:2]
    cig, cog = cin // groups, w.shape[1]
    gg = g.reshape(n, groups, cog, *g.shape[2:])
    wg = w.reshape(groups, cig, cog, *w.shape[2:])
    out = np.zeros((n, groups, cig, *x.shape[2:]))
    for tap in np.ndindex(*spec.kernel):
        p = _pairs(x.shape[2:], g.shape[2:], tap, spec.stride, spec.dilation, spec.padding)
        if p is None:
            continue
        xs, ys = p
        out[(slice(None),) * 3 + xs] += np.einsum("ngo...,gco->ngc...", gg[(slice(None),) * 3 + ys],
                                                  wg[(Ellipsis, *tap)])
    return out.reshape(x.shape)


def grad_weight(x: np.ndarray, w: np.ndarray, g: np.ndarray, *, stride: Sequence[int], padding: PadPairs,
                output_padding: Sequence[int], dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """``dL/dw`` in the canonical ``(C_in, C_out/g, *K)`` layout; ``w`` gives the shape only."""
    x, w, g, spec = _setup(x, w, g, stride, padding, output_padding, dilation, groups)
    n, cin = x.shape[:2]
    cig, cog = cin // groups, w.shape[1]
    xg = x.reshape(n, groups, cig, *x.shape[2:])
    gg = g.reshape(n, groups, cog, *g.shape[2:])
    out = np.zeros((groups, cig, cog, *spec.kernel))
    for tap in np.ndindex(*spec.kernel):
        p = _pairs(x.shape[2:], g.shape[2:], tap, spec.stride, spec.dilation, spec.padding)
        if p is None:
            continue
        xs, ys = p
        sp = "ijk"[:len(tap)]
        out[(Ellipsis, *tap)] = np.einsum(f"ngc{sp},ngo{sp}->gco", xg[(slice(None),) * 3 + xs],
                                          gg[(slice(None),) * 3 + ys])
    return out.reshape(w.shape)


def grad_bias(g: np.ndarray) -> np.ndarray:
    """``dL/db`` ``(C_out,)``: the cotangent summed over batch and output positions."""
    g = np.asarray(g, np.float64)
    return g.sum(axis=(0, *range(2, g.ndim))) if g.ndim > 1 else g


def gradient(quantity: str, x: np.ndarray, w: np.ndarray, g: np.ndarray, **kw: Any) -> np.ndarray:
    """The reference gradient named ``quantity`` (one of :data:`GRADIENTS`), canonical layout."""
    if quantity == "grad_input":
        return grad_input(x, w, g, **kw)
    if quantity == "grad_weight":
        return grad_weight(x, w, g, **kw)
    if quantity == "grad_bias":
        return grad_bias(g)
    raise ValueError(f"unknown gradient {quantity!r}; expected one of {GRADIENTS}")


def gradient_shape(quantity: str, input_shape: Sequence[int], weight_shape: Sequence[int],
                   groups: int) -> tuple[int, ...]:
    """Shape of the gradient: that of the input, the weight, or ``(C_out,)``."""
    if quantity == "grad_input":
        return tuple(input_shape)
    if quantity == "grad_weight":
        return tuple(weight_shape)
    return (int(weight_shape[1]) * groups,)


def matrix_grad_input(w: np.ndarray, g: np.ndarray, *, in_spatial: Sequence[int], stride: Sequence[int],
                      padding: PadPairs, dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Cross-check of :func:`grad_input`: ``dL/dx = V g`` with ``V`` the forward conv's matrix
    (``convT(x) = V.T x``), per batch element."""
    n = g.shape[0]
    v = forward_matrix(w, in_spatial=in_spatial, out_spatial=g.shape[2:], stride=stride, padding=padding,
                       dilation=dilation, groups=groups)
    dx: np.ndarray = (np.asarray(g, np.float64).reshape(n, v.shape[1]) @ v.T).reshape(n, w.shape[0], *in_spatial)
    return dx


def weight_jacobian_gradient(x: np.ndarray, w_shape: Sequence[int], g: np.ndarray, *, stride: Sequence[int],
                             padding: PadPairs, dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Cross-check of :func:`grad_weight` from the Jacobian: ``y`` is linear in ``w``, column ``k`` of
    ``dy/dw`` is the output for the unit weight ``e_k`` (``x @ V(e_k)`` by the matrix form), so
    ``dL/dw_k = <g, x V(e_k)>``."""
    x = np.asarray(x, np.float64)
    g = np.asarray(g, np.float64)
    n = x.shape[0]
    xf, gf = x.reshape(n, int(np.prod(x.shape[1:]))), g.reshape(n, int(np.prod(g.shape[1:])))
    out = np.zeros(int(np.prod(w_shape)))
    for k in range(out.size):
        e = np.zeros(out.size)
        e[k] = 1.0
        v = forward_matrix(e.reshape(w_shape), in_spatial=x.shape[2:], out_spatial=g.shape[2:], stride=stride,
                           padding=padding, dilation=dilation, groups=groups)
        out[k] = float(np.sum(gf * (xf @ v)))
    return out.reshape(w_shape)
