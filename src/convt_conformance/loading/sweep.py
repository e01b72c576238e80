"""Expansion of ``sweeps:`` entries (an additive key of the case format) into raw cases.

A sweep is ``{id, grid: {key: [values...]}, fixed: {key: value}, dtypes, tags, seed}``.
Keys: ``rank, batch, in_channels, out_channels, spatial, kernel, stride, padding,
output_padding, dilation, groups, bias, distribution``. The Cartesian product of ``grid``
(over ``fixed``) is expanded; ``groups: depthwise`` means ``groups = in_channels``.
Combinations that are not valid transposed convolutions (output_padding too large,
channels not divisible by groups, non-positive output: :meth:`convt_conformance.model.spec.ConvSpec.problems`,
the rules the loader applies) are skipped, so a grid can be written generously. Ids are built from the parameters alone: ``<sweep id>`` plus ``-<key><value>``
for every parameter that differs from the sweep's base (the defaults under ``fixed``), in one
canonical key order; so a grid that grows (a new key whose values include the base value, more
values of a key) or is reordered keeps every existing id, and with it every seed and every
known-disagreement entry that names it.
Tensors are random, seeded from a CRC32 of the generated id (stable across machines).
"""

from __future__ import annotations

import itertools
import math
import zlib
from typing import Any

from convt_conformance.model.case import CaseProblem
from convt_conformance.model.limits import over_limit
from convt_conformance.model.spec import ConvSpec, pad_pairs, per_axis
from convt_conformance.model.string_padding import resolve_case_padding

_DEFAULTS: dict[str, Any] = {
    "rank": 2, "batch": 1, "in_channels": 2, "out_channels": 3, "spatial": 4, "kernel": 3,
    "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1, "bias": False,
    "distribution": "integers",
}
_SHORT = {"rank": "r", "batch": "n", "in_channels": "ci", "out_channels": "co", "spatial": "x",
          "kernel": "k", "stride": "s", "padding": "p", "output_padding": "op", "dilation": "d",
          "groups": "g", "bias": "b", "distribution": ""}
_DIST = {
    "integers": {"distribution": "integers", "low": -3, "high": 3},
    "uniform": {"distribution": "uniform", "low": -1.0, "high": 1.0},
    "normal": {"distribution": "normal", "mean": 0.0, "std": 1.0},
}


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, list):
        return "x".join(_fmt(i) for i in v) if all(not isinstance(i, list) for i in v) \
            else "_".join(_fmt(i) for i in v)
    return str(v)


def _build(sweep_id: str, p: dict[str, Any], varying: list[str], base_seed: int) -> tuple[dict[str, Any] | None, str]:
    """One raw case of the sweep (values already schema-checked: see ``SWEEP_VALUE``)."""
    try:
        return _build_checked(sweep_id, p, varying, base_seed)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        return None, f"bad value in {({k: p[k] for k in varying})}: {type(exc).__name__}: {exc}"


def _build_checked(sweep_id: str, p: dict[str, Any], varying: list[str], base_seed: int) -> tuple[dict[str, Any] | None, str]:
    rank = int(p["rank"])
    if not 1 <= rank <= 3:
        return None, f"rank must be 1, 2 or 3, got {rank}"
    try:
        spatial = per_axis(p["spatial"], rank)
        kernel = per_axis(p["kernel"], rank)
        stride = per_axis(p["stride"], rank)
        dil = per_axis(p["dilation"], rank)
        op = per_axis(p["output_padding"], rank)
        pad = pad_pairs(p["padding"], rank) if not isinstance(p["padding"], str) else None
    except (TypeError, ValueError, IndexError) as exc:
        return None, f"bad value: {exc}"
    cin = int(p["in_channels"])
    cout = int(p["out_channels"])
    groups = cin if p["groups"] == "depthwise" else int(p["groups"])
    if p["groups"] == "depthwise" and cout % cin:
        return None, "skip"
    if groups < 1 or cout % groups:  # out_channels must split into the groups to build the weight
        return None, "skip"
    mode_op = op
    if pad is None:  # string padding: the geometry of its resolution; the case keeps the string
        res, _why = resolve_case_padding(p["padding"], spatial, kernel, stride, dil, op)
        if res is None:
            return None, "skip"
        pad, op = res.padding, res.output_padding
    batch = int(p["batch"])
    spec = ConvSpec((batch, cin, *spatial), (cin, cout // groups, *kernel), (cout,) if p["bias"] else None,
                    stride, pad, op, dil, groups)
    if len(spatial) != rank or spec.problems():
        return None, "skip"
    cid = sweep_id + "".join(f"-{_SHORT[k]}{_fmt(p[k])}" for k in varying)
    seed = (zlib.crc32(cid.encode()) + base_seed) % (2**31)
    dist = _DIST[p["distribution"]]
    raw: dict[str, Any] = {
        "id": cid,
        "input": {"random": {"shape": list(spec.input_shape), **dist, "seed": seed}},
        "weight": {"random": {"shape": list(spec.weight_shape), **dist, "seed": seed + 1}},
        "stride": list(stride), "output_padding": list(mode_op),
        "padding": p["padding"] if isinstance(p["padding"], str) else [list(x) for x in pad],
        "dilation": list(dil), "groups": groups, "expected": {"shape": list(spec.output_shape)},
    }
    if p["bias"]:
        raw["bias"] = {"random": {"shape": [cout], **dist, "seed": seed + 2}}
    return raw, ""


def expand_sweep(sweep: dict[str, Any], file: str, label: str) -> tuple[list[dict[str, Any]], list[CaseProblem]]:
    """Raw case mappings generated by one sweep entry, and problems found while expanding."""
    problems: list[CaseProblem] = []
    grid: dict[str, Any] = sweep["grid"]
    fixed = sweep.get("fixed") or {}
    unknown = set(fixed) - set(_DEFAULTS)
    if unknown:
        problems.append(CaseProblem(file, sweep["id"], f"{label}.fixed",
                                    f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_DEFAULTS)}"))
        return [], problems
    for k, vals in grid.items():
        if k == "distribution" and any(v not in _DIST for v in vals):
            problems.append(CaseProblem(file, sweep["id"], f"{label}.grid.distribution",
                                        f"unknown distribution in {vals}; allowed {sorted(_DIST)}"))
            return [], problems
    keys = list(grid)
    points = math.prod(len(grid[k]) for k in keys)
    msg = over_limit("sweep_points", "grid points", points)
    if msg:
        problems.append(CaseProblem(file, sweep["id"], f"{label}.grid", msg))
        return [], problems
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = {**_DEFAULTS, **fixed, **dict(zip(keys, combo))}
        base = {**_DEFAULTS, **fixed}
        named = [k for k in _DEFAULTS if params[k] != base[k]]  # canonical order: _DEFAULTS'
        raw, why = _build(sweep["id"], params, named, int(sweep.get("seed", 0)))
        if raw is None:
            if why != "skip":
                problems.append(CaseProblem(file, sweep["id"], f"{label}.grid", why))
                return [], problems
            continue
        if raw["id"] in seen:
            continue
        seen.add(raw["id"])
        for k in ("tags", "dtypes", "source", "description"):
            if k in sweep:
                raw[k] = sweep[k]
        raw.setdefault("source", f"sweep {sweep['id']} in {file}")
        out.append(raw)
    if not out:
        problems.append(CaseProblem(file, sweep["id"], f"{label}.grid",
                                    "the grid produced no valid configuration"))
    return out, problems
