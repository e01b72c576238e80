"""Expansion of ``invalid_grids:`` entries (an additive key of the case format) into invalid cases.

An entry is ``{id, break: [breaker, ...], grid: {rank, groups, dilation, bias}, trim: [...],
dtypes, tags, description}``. For every point of the grid a *valid* base configuration is built
(PyTorch convention: input ``(1, 2*groups, 3, ...)``, weight ``(2*groups, 2, 2, ...)``,
stride 2, padding 0, output_padding 0, the point's dilation, groups and bias), and each breaker
turns it into a case that breaks exactly one rule of ``convt_conformance/checking/invalid_rules.yaml`` (the
loader's own validation names exactly that rule: tested), ``expected: {error: true}``.
Ids are stable: ``<id>-<breaker>-r<rank>-g<groups>-d<dilation>-b<0|1>``. Tensors are random
uniform, seeded by a CRC32 of the id.

Where a breaker means nothing at a grid point, the point is skipped (documented in
``BREAKERS`` and the README): indivisible channels needs groups > 1, a wrong bias length needs
a bias, a zero dilation on a rank-1 dilated base is the undilated case again. Points a file
leaves out on purpose are ``trim`` rules, each with its ``why``.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convt_conformance.model.case import CaseProblem

GRID_KEYS = ("rank", "groups", "dilation", "bias")

INVALID_GRID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "break", "grid"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
        "source": {"type": "string"},
        "description": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"}},
        "dtypes": {"type": "array", "items": {"enum": ["float16", "bfloat16", "float32", "float64"]},
                   "minItems": 1, "uniqueItems": True},
        "break": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
        # points left out on purpose: every grid key given matches (a value or a list of values),
        # the breakers in `except_break` excepted; `why` is required (documented trimming)
        "trim": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["why"],
            "properties": {
                "rank": {}, "groups": {}, "dilation": {}, "bias": {},
                "except_break": {"type": "array", "items": {"type": "string"}},
                "why": {"type": "string", "minLength": 1},
            }}},
        "grid": {
            "type": "object", "additionalProperties": False, "minProperties": 1,
            "properties": {
                "rank": {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 1},
                "groups": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                "dilation": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                "bias": {"type": "array", "items": {"type": "boolean"}, "minItems": 1},
            },
        },
    },
}


@dataclass
class Config:
    """A configuration under construction (canonical convention, per-axis lists)."""

    rank: int
    groups: int
    dilation_base: int
    has_bias: bool
    in_channels: int
    weight_in: int
    out_per_group: int
    spatial: list[int]
    kernel: list[int]
    stride: list[int]
    padding: list[int]
    output_padding: list[int]
    dilation: list[int]
    bias_length: int

    @classmethod
    def base(cls, rank: int, groups: int, dilation: int, bias: bool) -> Config:
        cin = 2 * groups
        return cls(rank, groups, dilation, bias, cin, cin, 2, [3] * rank, [2] * rank, [2] * rank,
                   [0] * rank, [0] * rank, [dilation] * rank, 2 * groups)

    def full_extent(self) -> list[int]:
        return [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in
                zip(self.spatial, self.stride, self.dilation, self.kernel)]


def _zero_output(c: Config) -> None:
    full = c.full_extent()
    c.padding = [-(-f // 2) for f in full]  # ceil(full / 2): out = full - 2p + op = 0
    c.output_padding = [2 * p - f for p, f in zip(c.padding, full)]  # 0 or 1 < max(stride, dilation)


def _negative_output(c: Config) -> None:
    c.padding = [f // 2 + 1 for f in c.full_extent()]  # out = (full % 2) - 2 < 0


def _op_at_bound(c: Config) -> None:
    c.output_padding = [max(s, d) for s, d in zip(c.stride, c.dilation)]


def _op_above_bound(c: Config) -> None:
    c.output_padding = [max(s, d) + 1 for s, d in zip(c.stride, c.dilation)]


def _negative_padding(c: Config) -> None:
    c.padding = [-1] * c.rank


def _groups_indivisible(c: Config) -> None:
    c.in_channels = c.weight_in = 2 * c.groups + 1


def _channels_mismatch(c: Config) -> None:
    c.weight_in = c.in_channels + c.groups


def _zero_stride(c: Config) -> None:
    c.stride = [0] * c.rank


def _zero_dilation(c: Config) -> None:
    c.dilation = [*c.dilation[:-1], 0]  # the last axis: the others keep the base dilation


def _rank_mismatch(c: Config) -> None:
    # one kernel axis fewer (ranks 2, 3) or more (rank 1): weight rank != input rank
    c.kernel = c.kernel[:-1] if c.rank > 1 else [*c.kernel, 2]


def _zero_spatial(c: Config) -> None:
    c.spatial = [*c.spatial[:-1], 0]


def _bias_shape(c: Config) -> None:
    c.bias_length = c.out_per_group * c.groups + 1


@dataclass(frozen=True)
class Breaker:
    """Turns a valid base into a case breaking exactly ``rule``; ``applies`` says where it means
    something (``why_not``: the documented reason it is skipped elsewhere)."""

    rule: str
    apply: Callable[[Config], None]
    applies: Callable[[Config], bool] = lambda c: True
    why_not: str = ""


BREAKERS: dict[str, Breaker] = {
    "zero-output": Breaker("nonpositive-output", _zero_output),
    "negative-output": Breaker("nonpositive-output", _negative_output),
    "output-padding-at-bound": Breaker("output-padding-bound", _op_at_bound),
    "output-padding-above-bound": Breaker("output-padding-bound", _op_above_bound),
    "negative-padding": Breaker("negative-padding", _negative_padding),
    "groups-indivisible": Breaker("groups-indivisible", _groups_indivisible, lambda c: c.groups > 1,
                                  "every C_in is divisible by groups 1"),
    "channels-mismatch": Breaker("channels-mismatch", _channels_mismatch),
    "zero-stride": Breaker("nonpositive-stride", _zero_stride),
    "zero-dilation": Breaker("nonpositive-dilation", _zero_dilation,
                             lambda c: c.rank > 1 or c.dilation_base == 1,
                             "rank 1: zeroing the only axis leaves no dilated axis (same as dilation 1)"),
    "rank-mismatch": Breaker("rank-mismatch", _rank_mismatch),
    "zero-spatial": Breaker("zero-spatial", _zero_spatial),
    "bias-shape": Breaker("bias-shape", _bias_shape, lambda c: c.has_bias, "needs a bias"),
}


def trimmed(trims: list[dict[str, Any]], breaker: str, point: dict[str, Any]) -> bool:
    """Whether a grid point is left out for ``breaker`` by one of the entry's ``trim`` rules."""
    for t in trims:
        if breaker in t.get("except_break", ()):
            continue
        if all(point[k] in (t[k] if isinstance(t[k], list) else [t[k]]) for k in GRID_KEYS if k in t):
            return True
    return False


def _raw_case(cid: str, c: Config) -> dict[str, Any]:
    seed = zlib.crc32(cid.encode()) % (2**31)
    dist = {"distribution": "uniform", "low": -1.0, "high": 1.0}
    raw: dict[str, Any] = {
        "id": cid,
        "input": {"random": {"shape": [1, c.in_channels, *c.spatial], **dist, "seed": seed}},
        "weight": {"random": {"shape": [c.weight_in, c.out_per_group, *c.kernel], **dist, "seed": seed + 1}},
        "stride": list(c.stride), "padding": list(c.padding), "output_padding": list(c.output_padding),
        "dilation": list(c.dilation), "groups": c.groups, "expected": {"error": True},
    }
    if c.has_bias:
        raw["bias"] = {"random": {"shape": [c.bias_length], **dist, "seed": seed + 2}}
    return raw


def expand_invalid_grid(entry: dict[str, Any], file: str, label: str
                        ) -> tuple[list[dict[str, Any]], list[CaseProblem]]:
    """Raw invalid cases generated by one ``invalid_grids`` entry, and problems found
    (an unknown breaker name; a grid producing nothing)."""
    problems: list[CaseProblem] = []
    unknown = [b for b in entry["break"] if b not in BREAKERS]
    if unknown:
        problems.append(CaseProblem(file, entry["id"], f"{label}.break",
                                    f"unknown breaker(s) {unknown}; known: {sorted(BREAKERS)}"))
        return [], problems
    grid = {"rank": [2], "groups": [1], "dilation": [1], "bias": [False], **entry["grid"]}
    out: list[dict[str, Any]] = []
    for name in entry["break"]:
        breaker = BREAKERS[name]
        for rank, groups, dil, bias in itertools.product(*(grid[k] for k in GRID_KEYS)):
            c = Config.base(rank, groups, dil, bias)
            point = {"rank": rank, "groups": groups, "dilation": dil, "bias": bias}
            if not breaker.applies(c) or trimmed(entry.get("trim", []), name, point):
                continue
            breaker.apply(c)
            cid = f"{entry['id']}-{name}-r{rank}-g{groups}-d{dil}-b{int(bias)}"
            raw = _raw_case(cid, c)
            raw["tags"] = list(entry.get("tags", ["invalid"]))
            for k in ("dtypes", "description"):
                if k in entry:
                    raw[k] = entry[k]
            raw["source"] = (f"invalid grid {entry['id']} in {file}: breaks {breaker.rule} ({name}) on a valid "
                             f"rank-{rank} base, groups {groups}, dilation {dil}, {'with' if bias else 'no'} bias")
            out.append(raw)
    if not out:
        problems.append(CaseProblem(file, entry["id"], f"{label}.grid", "the grid produced no case"))
    return out, problems


def breaker_rule(case_id: str, grid_id: str) -> str | None:
    """The rule a generated id's breaker breaks (``<grid_id>-<breaker>-r..``), or None."""
    rest = case_id[len(grid_id) + 1:] if case_id.startswith(grid_id + "-") else ""
    for name in sorted(BREAKERS, key=len, reverse=True):
        if rest.startswith(name + "-r"):
            return BREAKERS[name].rule
    return None
