"""The reference for transposed convolution: the suite's oracle, in float64 (conformance/oracle/).

Convention (docs/case-format.md, PyTorch's): input ``(N, C_in, *S)`` channels-first, weight
``(C_in, C_out/groups, *K)`` applied WITHOUT a flip by the scatter ("pixel splatting")
definition, padding as per-axis ``(begin, end)`` pairs cut from the full scatter output,
``output_padding`` extra elements at the far end of each axis.

Three independent formulations, cross-checked in tests:

1. :func:`conv_transpose_scatter` – the definition: every input element times the kernel is
   added at offset ``i*stride`` (taps ``dilation`` apart), then cropped.
2. :func:`conv_transpose_matrix` – build the matrix ``V`` of the forward convolution
   (``conv(y) = V @ y``) and return ``V.T @ x``.
3. :func:`conv_transpose_recipe` – insert ``stride-1`` zeros between input elements, pad by
   ``dilation*(k-1) - padding``, flip the kernel, correlate (revisited's recipe).

All loops run over kernel taps only; everything else is vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convt_conformance.model.spec import ConvSpec, PadPairs

__all__ = [
    "ConfigurationError", "conv_transpose_scatter", "conv_transpose_recipe",
    "conv_transpose_matrix", "conv_forward", "forward_matrix", "work_buffers",
]


class ConfigurationError(ValueError):
    """The hyper-parameters do not describe a valid transposed convolution."""


def _prepare(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Sequence[int], padding: PadPairs,
             output_padding: Sequence[int], dilation: Sequence[int], groups: int
             ) -> tuple[np.ndarray, np.ndarray, ConvSpec]:
    """float64 copies of x and w and the validated spec of the call: ConfigurationError with
    :meth:`ConvSpec.problems` (the rules of case loading) for an invalid one."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    spec = ConvSpec.of_call(x.shape, w.shape, None if b is None else np.shape(b), stride=stride, padding=padding,
                            output_padding=output_padding, dilation=dilation, groups=groups)
    problems = spec.problems()
    if problems:
        raise ConfigurationError("; ".join(problems))
    return x, w, spec


def _scatter_extent(spec: ConvSpec) -> tuple[int, ...]:
    """Per axis, the scatter's buffer before cropping: ``(in-1)*stride + dilation*(k-1) + 1 +
    output_padding``."""
    return tuple(f + op for f, op in zip(spec.full_extent, spec.output_padding))


def _recipe_geometry(spec: ConvSpec) -> tuple[tuple[int, ...], list[tuple[int, int]]]:
    """The recipe's zero-inserted input extent per axis, ``(in-1)*stride + 1``, and its pads per
    axis, ``(d*(k-1) - pad_begin, d*(k-1) - pad_end + output_padding)`` (negative: a crop)."""
    dil_len = tuple((sz - 1) * st + 1 for sz, st in zip(spec.in_spatial, spec.stride))
    pads = [(d * (k - 1) - pb, d * (k - 1) - pe + op)
            for d, k, (pb, pe), op in zip(spec.dilation, spec.kernel, spec.padding, spec.output_padding)]
    return dil_len, pads


def work_buffers(spec: ConvSpec) -> dict[str, tuple[int, ...]]:
    """The arrays the formulations below allocate for a call of ``spec`` besides its input,
    weight and output (whose shapes a case states), by what they are: the scatter's uncropped
    buffer, the recipe's zero-inserted input and that input padded. Written from the same helpers
    the formulations allocate with, so case validation bounds exactly what is allocated; the
    matrix form's ``V`` is bounded by the NumPy adapter, which leaves a case out of that column
    beyond its size. Extents of an invalid configuration are taken as 0 where negative."""
    n, cin, cout = spec.input_shape[0], spec.in_channels, spec.out_channels
    dil_len, pads = _recipe_geometry(spec)
    padded = tuple(length + max(a, 0) + max(c, 0) for length, (a, c) in zip(dil_len, pads))
    return {
        "scatter buffer (uncropped: (in-1)*stride + dilation*(k-1) + 1 + output_padding per axis)":
            (n, cout, *(max(e, 0) for e in _scatter_extent(spec))),
        "zero-inserted input ((in-1)*stride + 1 per axis)": (n, cin, *(max(e, 0) for e in dil_len)),
        "padded zero-inserted input (plus dilation*(k-1) - padding at each end)": (n, cin, *(max(e, 0) for e in padded)),
    }


def _grouped(x: np.ndarray, w: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    n, cin = x.shape[:2]
    xg = x.reshape(n, groups, cin // groups, *x.shape[2:])
    wg = w.reshape(groups, cin // groups, w.shape[1], *w.shape[2:])
    return xg, wg


def _finish(out: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    n, g, cog = out.shape[:3]
    out = out.reshape(n, g * cog, *out.shape[3:])
    if b is not None:
        out = out + b.reshape((1, -1) + (1,) * (out.ndim - 2))
    return out


def conv_transpose_scatter(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *,
                           stride: Sequence[int], padding: PadPairs, output_padding: Sequence[int],
                           dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Formulation 1, the definition: scatter ``x[i] * w`` at ``i*stride``, then crop.

    Computed in float64. Raises :class:`ConfigurationError` for invalid configurations.
    """
    x, w, spec = _prepare(x, w, b, stride, padding, output_padding, dilation, groups)
    xg, wg = _grouped(x, w, groups)
    n, s = x.shape[0], x.shape[2:]
    buf_len = _scatter_extent(spec)
    buf = np.zeros((n, groups, w.shape[1], *buf_len))
    for tap in np.ndindex(*spec.kernel):
        # (N, G, Cg_in, *S) x (G, Cg_in, Cg_out) -> (N, G, Cg_out, *S)
        contrib = np.einsum("ngc...,gco->ngo...", xg, wg[(Ellipsis, *tap)])
        dest = tuple(
            slice(d * t, d * t + st * (sz - 1) + 1, st)
            for d, t, st, sz in zip(spec.dilation, tap, spec.stride, s)
        )
        buf[(slice(None),) * 3 + dest] += contrib
    crop = tuple(slice(pb, L - pe) for (pb, pe), L in zip(spec.padding, buf_len))
    return _finish(buf[(slice(None),) * 3 + crop], b)


def conv_transpose_recipe(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *,
                          stride: Sequence[int], padding: PadPairs, output_padding: Sequence[int],
                          dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Formulation 3 (revisited): zero-insert by ``stride``, pad ``d*(k-1)-p`` (begin) and
    ``d*(k-1)-p+output_padding`` (end; negative pads crop), flip the kernel, correlate."""
    x, w, spec = _prepare(x, w, b, stride, padding, output_padding, dilation, groups)
    xg, wg = _grouped(x, w, groups)
    n = x.shape[0]
    dil_len, pads = _recipe_geometry(spec)
    xd: np.ndarray = np.zeros(xg.shape[:3] + dil_len)
    xd[(slice(None),) * 3 + tuple(slice(None, None, st) for st in spec.stride)] = xg
    # Apply positive pads with np.pad, negative ones by slicing.
    xd = np.pad(xd, [(0, 0)] * 3 + [(max(a, 0), max(c, 0)) for a, c in pads])
    xd = xd[(slice(None),) * 3 + tuple(
        slice(max(-a, 0), n_ax - max(-c, 0)) for (a, c), n_ax in zip(pads, xd.shape[3:]))]
    wflip = wg[(Ellipsis,) + (slice(None, None, -1),) * len(spec.kernel)]
    out_sp = spec.out_spatial
    out = np.zeros((n, groups, w.shape[1], *out_sp))
    for tap in np.ndindex(*spec.kernel):
        win = tuple(slice(d * t, d * t + o) for d, t, o in zip(spec.dilation, tap, out_sp))
        out += np.einsum("ngc...,gco->ngo...", xd[(slice(None),) * 3 + win], wflip[(Ellipsis, *tap)])
    return _finish(out, b)


def conv_forward(y: np.ndarray, w: np.ndarray, *, stride: Sequence[int], padding: PadPairs,
                 dilation: Sequence[int], groups: int = 1, in_spatial: Sequence[int]) -> np.ndarray:
    """The forward convolution (cross-correlation) whose adjoint is the transposed one.

    ``y``: ``(N, C_out, *out_spatial)`` (the transposed conv's output space); ``w`` in the
    transposed layout ``(C_in, C_out/g, *K)``. Returns ``(N, C_in, *in_spatial)`` with
    ``r[n, c, i] = sum_{o, t} w[c, o, t] * y[n, o, i*stride + d*t - pad_begin]`` (zero outside).
    """
    y = np.asarray(y, np.float64)
    w = np.asarray(w, np.float64)
    n, cout = y.shape[:2]
    g = groups
    cin = w.shape[0]
    k = w.shape[2:]
    yg = y.reshape(n, g, cout // g, *y.shape[2:])
    wg = w.reshape(g, cin // g, w.shape[1], *k)
    # Pad y generously so every index i*s + d*t - pb is in range, then slice strided windows.
    lo = [pb for pb, _ in padding]
    hi = [max(0, (i - 1) * s + d * (kk - 1) - pb - L + 1)
          for i, s, d, kk, (pb, _), L in zip(in_spatial, stride, dilation, k, padding, y.shape[2:])]
    yp = np.pad(yg, [(0, 0)] * 3 + list(zip(lo, hi)))
    out = np.zeros((n, g, cin // g, *in_spatial))
    for tap in np.ndindex(*k):
        win = tuple(slice(d * t, d * t + s * (i - 1) + 1, s)
                    for d, t, s, i in zip(dilation, tap, stride, in_spatial))
        out += np.einsum("ngo...,gco->ngc...", yp[(slice(None),) * 3 + win], wg[(Ellipsis, *tap)])
    return out.reshape(n, cin, *in_spatial)


def forward_matrix(w: np.ndarray, *, in_spatial: Sequence[int], out_spatial: Sequence[int],
                   stride: Sequence[int], padding: PadPairs, dilation: Sequence[int],
                   groups: int = 1) -> np.ndarray:
    """Dense matrix ``V`` of the forward convolution: ``conv(y).ravel() = V @ y.ravel()`` per
    batch element, rows ``(C_in, *in_spatial)``, columns ``(C_out, *out_spatial)`` (C order).

    For the documents' 3x3 input and 2x2 kernel this is their ``kernel2matrix(K)`` (4x9).
    """
    w = np.asarray(w, np.float64)
    cin, cog = w.shape[:2]
    k = w.shape[2:]
    cout = cog * groups
    n_in, n_out = int(np.prod(in_spatial)), int(np.prod(out_spatial))
    v = np.zeros((cin * n_in, cout * n_out))
    grid = np.indices(in_spatial).reshape(len(in_spatial), -1)  # (rank, n_in)
    c = np.arange(cin)
    for tap in np.ndindex(*k):
        j = np.stack([grid[a] * stride[a] + dilation[a] * tap[a] - padding[a][0] for a in range(len(k))])
        ok = np.all((j >= 0) & (j < np.asarray(out_spatial)[:, None]), axis=0)
        jflat = np.ravel_multi_index(tuple(np.where(ok, j, 0)), out_spatial)
        iflat = np.arange(n_in)
        for ol in range(cog):
            o = (c // (cin // groups)) * cog + ol  # global output channel for each input channel
            rows = (c[:, None] * n_in + iflat[None, :])[:, ok]
            cols = (o[:, None] * n_out + jflat[None, :])[:, ok]
            np.add.at(v, (rows, cols), np.broadcast_to(w[(c, ol, *tap)][:, None], rows.shape))
    return v


def conv_transpose_matrix(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *,
                          stride: Sequence[int], padding: PadPairs, output_padding: Sequence[int],
                          dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Formulation 2: ``convT(x) = V.T @ x`` with ``V`` the forward convolution's matrix.

    The definition's equal for finite values only: ``V``'s structural zeros times an Inf or NaN of
    ``x`` give NaN where the scatter adds nothing (the NumPy adapter leaves such a check out,
    values that overflow the dtype under test included)."""
    x, w, spec = _prepare(x, w, b, stride, padding, output_padding, dilation, groups)
    out_sp = spec.out_spatial
    v = forward_matrix(w, in_spatial=x.shape[2:], out_spatial=out_sp, stride=spec.stride,
                       padding=spec.padding, dilation=spec.dilation, groups=groups)
    n = x.shape[0]
    out: np.ndarray = (x.reshape(n, v.shape[0]) @ v).reshape(n, w.shape[1] * groups, *out_sp)
    if b is not None:
        out = out + b.reshape((1, -1) + (1,) * len(out_sp))
    return out
