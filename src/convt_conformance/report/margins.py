"""Error margins: per (adapter, API family, dtype), the distribution of
``log10(max_abs_err / tolerance.max)`` over the checks that have both, as a histogram and an
inline SVG.

``tolerance.max`` is the largest per-element tolerance of the check (the tolerance model is per
element, README "Tolerance model"), so a ratio below 1 does not by itself mean the check passed;
bars are split by status (failing checks drawn red). 0 on the axis is "error = tolerance": a
framework drifting towards its bound between releases shows as mass moving right.
Checks whose error is exactly 0 are counted separately (no logarithm).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from convt_conformance.adapters.registry import display_order
from convt_conformance.model.record import ErrorValue, as_records
from convt_conformance.results.findings import DTYPE_ORDER, api_family

LO, HI, WIDTH = -6.0, 2.0, 0.5  # bins of half a decade; below LO / above HI: the edge bins
N_BINS = int((HI - LO) / WIDTH)


def ratio_of(rec: Mapping[str, Any]) -> float | None:
    """max_abs_err / tolerance.max, or None when the record lacks either (or they are not finite)."""
    return _ratio(rec.get("max_abs_err"), (rec.get("tolerance") or {}).get("max"))


def _ratio(err: ErrorValue, tol: Any) -> float | None:
    if not isinstance(err, int | float) or not isinstance(tol, int | float):
        return None
    if not math.isfinite(err) or not math.isfinite(tol):
        return None
    if tol <= 0:
        return 0.0 if err == 0 else math.inf
    return float(err) / float(tol)


def _bin(ratio: float) -> int:
    if ratio == math.inf:
        return N_BINS - 1
    b = int(math.floor((math.log10(ratio) - LO) / WIDTH))
    return min(max(b, 0), N_BINS - 1)


def margin_histograms(results: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``{(adapter, api family, dtype): {"ok": [n per bin], "bad": [n per bin], "zero": n,
    "n": n, "max": largest ratio}}``; ``bad`` counts records whose status is failing, or whose
    underlying status is (xfail)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in as_records(results):
        ratio = _ratio(r.max_abs_err, (r.tolerance or {}).get("max"))
        if ratio is None:
            continue
        key = (r.adapter, api_family(r.api), r.dtype)
        h = out.setdefault(key, {"ok": [0] * N_BINS, "bad": [0] * N_BINS, "zero": 0, "n": 0, "max": 0.0})
        h["n"] += 1
        h["max"] = max(h["max"], ratio)
        if ratio == 0:
            h["zero"] += 1
            continue
        failing = r.status.failing or (r.underlying_status is not None and r.underlying_status.failing)
        h["bad" if failing else "ok"][_bin(ratio)] += 1
    return out


def margin_rows(hists: dict[tuple[str, str, str], dict[str, Any]]) -> dict[str, Any]:
    """Rows (adapter, api) x dtype columns for the template: ``{"dtypes": [...], "rows":
    [{"adapter", "api", "cells": [hist | None]}]}``."""
    dtypes = sorted({k[2] for k in hists}, key=lambda d: DTYPE_ORDER.index(d) if d in DTYPE_ORDER else 9)
    rows: dict[tuple[str, str], list[dict[str, Any] | None]] = defaultdict(lambda: [None] * len(dtypes))
    for (a, api, d), h in hists.items():
        rows[(a, api)][dtypes.index(d)] = h
    ordered = sorted(rows, key=lambda k: (display_order(k[0]), k[1]))
    return {"dtypes": dtypes, "rows": [{"adapter": a, "api": api, "cells": rows[(a, api)]} for a, api in ordered]}


def margin_svg(hist: dict[str, Any] | None, title: str = "", width: int = 200, height: int = 64) -> str:
    """The histogram as an inline ``<svg>`` string (log10 of max error / tolerance, -6 .. 2;
    green: checks that pass, red: failing or xfail; dashed line: error = tolerance). Every
    text is escaped."""
    if not hist:
        return ""
    pad_l, pad_b, pad_t = 4, 14, 4
    plot_w, plot_h = width - 2 * pad_l, height - pad_b - pad_t
    bw = plot_w / N_BINS
    peak = max([o + b for o, b in zip(hist["ok"], hist["bad"])] + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>',
             f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>']
    base = pad_t + plot_h
    for i, (ok, bad) in enumerate(zip(hist["ok"], hist["bad"])):
        x = pad_l + i * bw
        # square-root scale: a single check stays visible next to hundreds
        h_ok = plot_h * math.sqrt(ok / peak) if ok else 0.0
        h_all = plot_h * math.sqrt((ok + bad) / peak) if ok + bad else 0.0
        lo, hi = LO + i * WIDTH, LO + (i + 1) * WIDTH
        label = f"10^{lo:g}..10^{hi:g}: {ok} ok, {bad} failing"
        if ok:
            parts.append(f'<rect x="{x + 0.5:.1f}" y="{base - h_ok:.1f}" width="{bw - 1:.1f}" height="{h_ok:.1f}" '
                         f'fill="#43a047"><title>{escape(label)}</title></rect>')
        if bad:
            parts.append(f'<rect x="{x + 0.5:.1f}" y="{base - h_all:.1f}" width="{bw - 1:.1f}" '
                         f'height="{h_all - h_ok:.1f}" fill="#c62828"><title>{escape(label)}</title></rect>')
    x1 = pad_l + (0 - LO) / WIDTH * bw
    parts.append(f'<line x1="{x1:.1f}" y1="{pad_t}" x2="{x1:.1f}" y2="{base}" stroke="#000" stroke-dasharray="2,2"/>')
    for v in range(int(LO), int(HI) + 1, 2):
        x = pad_l + (v - LO) / WIDTH * bw
        anchor = "start" if v == int(LO) else "end" if v == int(HI) else "middle"
        parts.append(f'<text x="{x:.1f}" y="{height - 2}" font-size="9" text-anchor="{anchor}" fill="#555">'
                     f'{"1" if v == 0 else escape(f"1e{v}")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def margin_caption(hist: dict[str, Any] | None) -> str:
    """``n checks, k exact, max ratio r`` for under a plot."""
    if not hist:
        return ""
    extra = f", {hist['zero']} exact" if hist["zero"] else ""
    return f"{hist['n']} checks{extra}; worst {hist['max']:.3g}× tol"


def margin_comparison(base: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For every (adapter, API family, dtype) present in both runs: both histograms."""
    hb, hn = margin_histograms(base), margin_histograms(new)
    keys = sorted(set(hb) & set(hn), key=lambda k: (display_order(k[0]), k[1],
                                                    DTYPE_ORDER.index(k[2]) if k[2] in DTYPE_ORDER else 9))
    return [{"adapter": k[0], "api": k[1], "dtype": k[2], "base": hb[k], "new": hn[k]} for k in keys]
