"""Plausible NumPy implementations of transposed convolution, written independently of the
suite's reference (``convt_conformance/oracle/forward.py``): the building blocks of the mutants.

Convention of every function (the suite's canonical one, PyTorch's): input ``x`` of shape
``(N, C_in, *S)`` channels-first, weight ``w`` of shape ``(C_in, C_out/groups, *K)`` applied
WITHOUT a flip by the scatter definition (input element ``i`` times tap ``t`` lands at
``i*stride + t*dilation`` of the full output), ``padding`` as per-axis ``(begin, end)`` pairs
cut from the full output, ``output_padding`` extra elements at the far end. Arrays come in
and go out as float64 (the adapter rounds the result to the dtype under test).

Formulations:

- :func:`scatter_taps` – direct scatter, one vectorised step per kernel tap (channels summed
  per tap by ``einsum``), in a chosen accumulator dtype;
- :func:`scatter_sequential` – the same sum one term at a time, in a chosen order, optionally
  rounding every partial sum to a (16-bit) dtype;
- :func:`scatter_terms` – every term of every output element stacked on a last axis, then
  summed there (pairwise, NumPy's contiguous reduction) or by a NaN-skipping sum;
- :func:`col2im` – one GEMM per group (``W^T X``: columns) then col2im scatter-add of the taps;
- :func:`zero_insert_correlate` – insert ``stride-1`` zeros, pad ``d(k-1)-p``, flip, correlate.

:func:`crop` cuts the full output to the output window (zero-extended where the window
reaches past it); :func:`validate` checks a configuration the way a framework would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

Pairs = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Params:
    """Hyper-parameters of one call, one entry per spatial axis (PyTorch meaning)."""

    stride: tuple[int, ...]
    padding: Pairs
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    def with_(self, **kw) -> Params:
        return replace(self, **kw)


def accumulator(dtype: str) -> type:
    """The accumulator a framework uses: float64 for float64, float32 for everything else."""
    return np.float64 if dtype == "float64" else np.float32


def full_extent(spatial: Iterable[int], kernel: Iterable[int], stride: Iterable[int],
                dilation: Iterable[int]) -> tuple[int, ...]:
    """Uncropped scatter length per axis, ``(n-1)*s + d*(k-1) + 1`` (never below 0)."""
    return tuple(max((n - 1) * s + d * (k - 1) + 1, 0)
                 for n, k, s, d in zip(spatial, kernel, stride, dilation))


def _tap_slices(tap: tuple[int, ...], spatial: tuple[int, ...], stride: tuple[int, ...],
                dilation: tuple[int, ...]) -> tuple[slice, ...]:
    """Where the inputs land for one kernel tap: ``t*d + i*s`` for every input index ``i``."""
    return tuple(slice(t * d, t * d + (n - 1) * s + 1, s) if n > 0 else slice(0, 0)
                 for t, n, s, d in zip(tap, spatial, stride, dilation))


def _taps(kernel: tuple[int, ...], reverse: bool = False) -> list[tuple[int, ...]]:
    taps = list(itertools.product(*(range(k) for k in kernel)))
    return taps[::-1] if reverse else taps


def _shapes(x: np.ndarray, w: np.ndarray, groups: int):
    n, cin, *spatial = x.shape
    cout_g, kernel = w.shape[1], tuple(w.shape[2:])
    return n, cin // groups, cout_g, tuple(spatial), kernel


def scatter_taps(x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...],
                 groups: int, acc: type = np.float64) -> np.ndarray:
    """Full (uncropped) scatter output ``(N, C_out, *full)`` in dtype ``acc``."""
    n, cin_g, cout_g, spatial, kernel = _shapes(x, w, groups)
    out = np.zeros((n, groups * cout_g, *full_extent(spatial, kernel, stride, dilation)), dtype=acc)
    xa, wa = x.astype(acc), w.astype(acc)
    for g in range(groups):
        xg, wg = xa[:, g * cin_g:(g + 1) * cin_g], wa[g * cin_g:(g + 1) * cin_g]
        for tap in _taps(kernel):
            contrib = np.einsum("nc...,co->no...", xg, wg[(slice(None), slice(None), *tap)])
            out[(slice(None), slice(g * cout_g, (g + 1) * cout_g),
                 *_tap_slices(tap, spatial, stride, dilation))] += contrib
    return out


def scatter_sequential(x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...],
                       groups: int, acc: type = np.float64, reverse: bool = False,
                       round_each=None, skip_zero: str = "") -> np.ndarray:
    """Full scatter output summed one term at a time: for each tap, for each input channel
    (both reversed when ``reverse``); ``round_each(a)`` (if given) rounds every product and
    every partial sum, i.e. an accumulator of that precision. ``skip_zero`` (``"weight"`` or
    ``"input"``) leaves out the terms whose weight (or input) is exactly zero, as a sparse
    "skip the zeros" optimisation does (so 0 x Inf and NaN x 0 give no NaN)."""
    n, cin_g, cout_g, spatial, kernel = _shapes(x, w, groups)
    out = np.zeros((n, groups * cout_g, *full_extent(spatial, kernel, stride, dilation)), dtype=acc)
    xa, wa = x.astype(acc), w.astype(acc)
    rank = len(spatial)
    channels = range(cin_g - 1, -1, -1) if reverse else range(cin_g)
    for g in range(groups):
        for tap in _taps(kernel, reverse):
            idx = (slice(None), slice(g * cout_g, (g + 1) * cout_g), *_tap_slices(tap, spatial, stride, dilation))
            for c in channels:
                ci = g * cin_g + c
                wt = wa[(ci, slice(None), *tap)].reshape((1, cout_g) + (1,) * rank)
                term = xa[:, ci][:, None] * wt
                if skip_zero == "weight":
                    term = np.where(wt == 0, 0, term)
                elif skip_zero == "input":
                    term = np.where(xa[:, ci][:, None] == 0, 0, term)
                if round_each is None:
                    out[idx] += term
                else:
                    out[idx] = round_each(out[idx] + round_each(term))
    return out


def scatter_terms(x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...],
                  groups: int, acc: type = np.float64, reduce: str = "pairwise") -> np.ndarray:
    """Full scatter output from all ``C_in/g * prod(K)`` terms per element, stacked on a last
    (contiguous) axis with zeros where a term does not land, then reduced there:
    ``pairwise`` (``np.sum``, NumPy's pairwise summation) or ``nansum`` (NaN terms skipped)."""
    n, cin_g, cout_g, spatial, kernel = _shapes(x, w, groups)
    taps = _taps(kernel)
    full = full_extent(spatial, kernel, stride, dilation)
    terms = np.zeros((n, groups * cout_g, *full, cin_g * len(taps)), dtype=acc)
    xa, wa = x.astype(acc), w.astype(acc)
    rank = len(spatial)
    for g in range(groups):
        for j, tap in enumerate(taps):
            sl = _tap_slices(tap, spatial, stride, dilation)
            for c in range(cin_g):
                ci = g * cin_g + c
                term = xa[:, ci][:, None] * wa[(ci, slice(None), *tap)].reshape((1, cout_g) + (1,) * rank)
                terms[(slice(None), slice(g * cout_g, (g + 1) * cout_g), *sl, j * cin_g + c)] = term
    return np.nansum(terms, axis=-1) if reduce == "nansum" else np.sum(terms, axis=-1)


def col2im(x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...],
           groups: int, acc: type = np.float64) -> np.ndarray:
    """Full scatter output by GEMM + col2im: per group, ``cols = W^T @ X`` with ``W`` as
    ``(C_in/g, C_out/g * prod(K))`` and ``X`` as ``(C_in/g, N * prod(S))``; then every tap's
    column block is added at its place of the full output."""
    n, cin_g, cout_g, spatial, kernel = _shapes(x, w, groups)
    taps = _taps(kernel)
    out = np.zeros((n, groups * cout_g, *full_extent(spatial, kernel, stride, dilation)), dtype=acc)
    npos = int(np.prod(spatial))
    for g in range(groups):
        xg = x[:, g * cin_g:(g + 1) * cin_g].astype(acc)
        big_x = xg.reshape(n, cin_g, npos).transpose(1, 0, 2).reshape(cin_g, n * npos)
        big_w = w[g * cin_g:(g + 1) * cin_g].astype(acc).reshape(cin_g, cout_g * len(taps))
        cols = (big_w.T @ big_x).reshape(cout_g, len(taps), n, *spatial)
        for j, tap in enumerate(taps):
            block = np.moveaxis(cols[:, j], 1, 0)  # (N, C_out/g, *S)
            out[(slice(None), slice(g * cout_g, (g + 1) * cout_g),
                 *_tap_slices(tap, spatial, stride, dilation))] += block
    return out


def window(a: np.ndarray, starts: tuple[int, ...], lengths: tuple[int, ...]) -> np.ndarray:
    """``a[:, :, start:start+length, ...]`` per spatial axis, zero-extended where the window
    reaches before the start or past the end of ``a`` (negative starts allowed)."""
    out = np.zeros(a.shape[:2] + tuple(max(n, 0) for n in lengths), dtype=a.dtype)
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for start, n, size in zip(starts, lengths, a.shape[2:]):
        lo, hi = max(start, 0), min(start + max(n, 0), size)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[tuple(dst)] = a[tuple(src)]
    return out


def crop(full: np.ndarray, padding: Pairs, output_padding: tuple[int, ...],
         output_padding_first: bool = False) -> np.ndarray:
    """The output window of the full scatter output: per axis ``out = F - b - e + op``
    elements starting at ``b`` (zero-extended past either end); ``output_padding_first``
    puts the extra elements before the first one instead (a planted bug)."""
    lengths = tuple(f - b - e + op for f, (b, e), op in zip(full.shape[2:], padding, output_padding))
    starts = tuple(b - op if output_padding_first else b for (b, _), op in zip(padding, output_padding))
    return window(full, starts, lengths)


def add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``y + b`` broadcast over the channel axis (axis 1)."""
    if b is None:
        return y
    return y + b.astype(y.dtype).reshape((1, -1) + (1,) * (y.ndim - 2))


def zero_insert_correlate(x: np.ndarray, w: np.ndarray, p: Params, flip: bool = True,
                          pad_with_np_pad: bool = False) -> np.ndarray:
    """Output (cropped, no bias) as a correlation, float64: insert ``stride-1`` zeros between
    the inputs, pad ``(d(k-1) - b, d(k-1) - e + op)`` zeros (negative amounts crop), and
    correlate with the spatially flipped kernel, taps ``d`` apart. ``pad_with_np_pad`` hands
    the amounts to ``np.pad``, which refuses negative ones (``padding > d(k-1)``)."""
    n, cin_g, cout_g, spatial, kernel = _shapes(x, w, p.groups)
    dil_shape = tuple(max((s - 1) * st + 1, 0) for s, st in zip(spatial, p.stride))
    xi = np.zeros((n, x.shape[1], *dil_shape))
    xi[(slice(None), slice(None), *(slice(None, None, st) for st in p.stride))] = x
    amounts = [(d * (k - 1) - b, d * (k - 1) - e + op)
               for k, d, (b, e), op in zip(kernel, p.dilation, p.padding, p.output_padding)]
    if pad_with_np_pad:
        xp = np.pad(xi, [(0, 0), (0, 0), *amounts])
    else:
        xp = window(xi, tuple(-lo for lo, _ in amounts),
                    tuple(n + lo + hi for n, (lo, hi) in zip(dil_shape, amounts)))
    wk = w[(slice(None), slice(None), *(slice(None, None, -1),) * len(kernel))] if flip else w
    out_len = tuple(max(L - d * (k - 1), 0) for L, d, k in zip(xp.shape[2:], p.dilation, kernel))
    y = np.zeros((n, p.groups * cout_g, *out_len))
    for g in range(p.groups):
        for tap in _taps(kernel):
            win = xp[(slice(None), slice(g * cin_g, (g + 1) * cin_g),
                      *(slice(t * d, t * d + L) for t, d, L in zip(tap, p.dilation, out_len)))]
            wt = wk[(slice(g * cin_g, (g + 1) * cin_g), slice(None), *tap)]
            y[:, g * cout_g:(g + 1) * cout_g] += np.einsum("nc...,co->no...", win, wt)
    return y


RULES = ("rank", "groups", "in_channels", "stride", "dilation", "padding", "output_padding_sign",
         "output_padding", "spatial", "kernel", "output_size", "bias")


def validate(x, w, b, p, skip_rules, who: str) -> None:
    """Raise ValueError, as a framework's own validation would, when the configuration breaks a
    rule this implementation checks (``skip_rules`` are the ones a missing-validation mutant skips)."""
    found = problems(x, w, b, p, skip_rules)
    if found:
        raise ValueError(f"{who}: invalid configuration: {'; '.join(found)}")


def problems(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, p: Params,
             skip: frozenset[str] = frozenset()) -> list[str]:
    """Why a framework would refuse this call (rule names in :data:`RULES`; ``skip`` leaves
    rules out). Rank is checked first: without it nothing else can be read."""
    out: list[str] = []
    if "rank" not in skip and (x.ndim not in (3, 4, 5) or w.ndim != x.ndim):
        return [f"rank: input rank {x.ndim}, weight rank {w.ndim}; need equal ranks 3-5"]
    rank = x.ndim - 2
    if "groups" not in skip and (p.groups < 1 or x.shape[1] % p.groups):
        out.append(f"groups: C_in {x.shape[1]} is not divisible by groups {p.groups}")
    if "in_channels" not in skip and w.shape[0] != x.shape[1]:
        out.append(f"in_channels: weight C_in {w.shape[0]} != input C_in {x.shape[1]}")
    if any(len(v) != rank for v in (p.stride, p.padding, p.output_padding, p.dilation)):
        return out + ["rank: a per-axis parameter has the wrong number of axes"]
    checks = {
        "stride": any(s < 1 for s in p.stride),
        "dilation": any(d < 1 for d in p.dilation),
        "padding": any(b < 0 or e < 0 for b, e in p.padding),
        "output_padding_sign": any(op < 0 for op in p.output_padding),
        "output_padding": any(op >= max(s, d) for op, s, d in zip(p.output_padding, p.stride, p.dilation)),
        "spatial": any(n < 1 for n in x.shape[2:]),
        "kernel": any(k < 1 for k in w.shape[2:]),
    }
    out += [f"{rule}: invalid value" for rule, bad in checks.items() if bad and rule not in skip]
    if "output_size" not in skip:
        full = [(n - 1) * s + d * (k - 1) + 1 for n, k, s, d in zip(x.shape[2:], w.shape[2:], p.stride, p.dilation)]
        sizes = [f - b - e + op for f, (b, e), op in zip(full, p.padding, p.output_padding)]
        if any(s < 1 for s in sizes):
            out.append(f"output_size: the output would have size {sizes}")
    if "bias" not in skip and b is not None and b.shape != (w.shape[1] * p.groups,):
        out.append(f"bias: shape {list(b.shape)} != (C_out,)")
    return out
