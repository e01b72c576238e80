"""Convention probes: discover each native API's weight convention instead of trusting it.

Each framework's native API is called with a *naive* mapping (the canonical weight's first two
axes put in the API's two channel slots, spatial axes where its layout wants them, no flip)
after one of four candidate transforms of the canonical weight ``(C_in, C_out, kH, kW)``:
identity, spatial flip, in/out swap, or both; and with the input channels-first or
channels-last. Probe inputs are asymmetric (C_in = C_out = 2 so every candidate is callable,
a 2x3 kernel, a 3x4 input, stride (2, 1)), so exactly one candidate can match the reference.
The discovered transform is compared with the one the adapter declares; a framework that
changes a convention in a release shows up here as a disagreement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convt_conformance.adapters.base import ProbeCall
from convt_conformance.oracle import forward as ref

TRANSFORMS = ("identity", "spatial flip", "in/out swap", "in/out swap + spatial flip")
STRIDE = (2, 1)


def _transform(w: np.ndarray, name: str) -> np.ndarray:
    if "swap" in name:
        w = np.swapaxes(w, 0, 1)
    if "flip" in name:
        w = w[:, :, ::-1, ::-1]
    return np.ascontiguousarray(w)


def _probe_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261122)
    x = rng.integers(-3, 4, (1, 2, 3, 4)).astype(np.float64)
    w = rng.integers(-3, 4, (2, 2, 2, 3)).astype(np.float64)
    expected = ref.conv_transpose_scatter(x, w, stride=STRIDE, padding=((0, 0), (0, 0)),
                                          output_padding=(0, 0), dilation=(1, 1))
    return x, w, expected


def _probe_calls(frameworks: list[str] | None) -> list[tuple[str, ProbeCall]]:
    """(adapter name, ProbeCall) for every installed framework that declares probes."""
    from convt_conformance.adapters.registry import AdapterLoadError, adapter_names, get_adapter

    out: list[tuple[str, ProbeCall]] = []
    for name in adapter_names():
        if frameworks and name not in frameworks:
            continue
        try:
            a = get_adapter(name)
        except AdapterLoadError:
            continue
        if a.installed() and a.unavailable_reason() is None:
            out.extend((name, p) for p in a.probes())
    return out


def discover_conventions(frameworks: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per installed native API: discovered vs declared transform and layout."""
    x, w, expected = _probe_inputs()
    rows = []
    for adapter, probe in _probe_calls(frameworks):
        api = probe.api
        matches = []
        for layout in ("channels-first", "channels-last"):
            for t in TRANSFORMS:
                try:
                    out = probe.call(x, _transform(w, t), layout, STRIDE)
                except Exception:  # that candidate cannot even be called: not it
                    continue
                if out.shape == expected.shape and np.allclose(out, expected, rtol=0, atol=1e-9):
                    matches.append((t, layout))
        declared = probe.declared
        discovered = matches[0] if len(matches) == 1 else None
        rows.append({
            "adapter": adapter, "api": f"{adapter}.{api}",
            "discovered": (f"{discovered[0]}; {discovered[1]}" if discovered else
                           ("no candidate matches" if not matches else f"ambiguous: {matches}")),
            "declared": f"{declared[0]}; {declared[1]}",
            "agrees": discovered is not None and discovered == declared,
            "naive_mapping": "weight axes (A, B, kH, kW) into the API's two channel slots and spatial axes, no flip",
        })
    return rows


def probe_rows(frameworks: list[str]) -> list[dict[str, Any]]:
    """:func:`discover_conventions` for ``frameworks`` (none: no rows), a probe that raises
    turned into one disagreeing row (a probe must never lose a run's results)."""
    if not frameworks:
        return []
    try:
        return discover_conventions(frameworks)
    except Exception as exc:
        return [{"adapter": "?", "api": "probes", "discovered": f"probe error: {exc}",
                 "declared": "", "agrees": False, "naive_mapping": ""}]


def run_probe_rows(frameworks: list[str], preflight: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The probe rows of a run: those the preflight found (``preflight``: per framework what
    ``convt_conformance.run.preflight`` printed), the others' discovered here."""
    seen = {n: preflight[n]["probes"] for n in frameworks if isinstance(preflight.get(n, {}).get("probes"), list)}
    rest = [n for n in frameworks if n not in seen and "unavailable" not in preflight.get(n, {})]
    return [r for n in frameworks for r in seen.get(n, [])] + probe_rows(rest)
