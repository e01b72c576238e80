"""Loading, validating and materialising case files (CASE_FORMAT.md).

Every problem is collected as a :class:`CaseProblem` (file, case id or index, key path,
message); loading never stops at the first one and never raises on bad input.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from conformance.dtypes import DTYPE_NAMES, round_to
from conformance.geometry import Geometry, PadPairs, pad_pairs, per_axis
from conformance.limits import elements, expanded_nodes, limit, over_limit
from conformance.schema import CASE_SCHEMA, DEFAULTS_SCHEMA, FILE_SCHEMA, with_defs
from conformance.string_padding import resolve_case_padding
from conformance.yaml_io import load_yaml


@dataclass(frozen=True)
class CaseProblem:
    """One validation problem, located precisely."""

    file: str
    case: str  # case id, or "cases[i]" when the id itself is missing/broken, or "" (file-level)
    key: str  # key path, e.g. "cases[3].weight.values"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}"
        if self.case:
            where += f": case {self.case}"
        return f"{where}: {self.key or '<file>'}: {self.message}"


@dataclass(frozen=True)
class TensorSpec:
    """A tensor given by literal values (float64) or by a seeded random recipe."""

    shape: tuple[int, ...]
    values: np.ndarray | None = None
    random: dict | None = None

    def generate(self) -> np.ndarray:
        """The tensor in float64; random ones come from ``numpy.random.default_rng(seed)``."""
        if self.values is not None:
            return self.values.copy()
        r = self.random or {}
        rng = np.random.default_rng(r["seed"])
        dist = r["distribution"]
        if dist == "uniform":
            arr = rng.uniform(r.get("low", -1.0), r.get("high", 1.0), self.shape)
        elif dist == "normal":
            arr = rng.normal(r.get("mean", 0.0), r.get("std", 1.0), self.shape)
        else:
            arr = rng.integers(int(r.get("low", -4)), int(r.get("high", 4)), self.shape, endpoint=True)
        return np.asarray(arr, dtype=np.float64)


@dataclass(frozen=True)
class Case:
    """One validated case in the canonical (PyTorch) convention.

    input ``(N, C_in, *spatial)``, weight ``(C_in, C_out/groups, *kernel)`` unflipped,
    padding as per-axis ``(begin, end)`` pairs cut from the full scatter output.
    """

    id: str
    file: str
    source: str
    description: str
    tags: tuple[str, ...]
    input: TensorSpec
    weight: TensorSpec
    bias: TensorSpec | None
    stride: tuple[int, ...]
    padding: PadPairs
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    dtypes: tuple[str, ...]
    expected_shape: tuple[int, ...] | None
    expected_values: np.ndarray | None
    expected_error: bool
    tolerance: dict | None
    frameworks: tuple[str, ...] | None
    frameworks_reason: str
    invalid_reasons: tuple[str, ...] = field(default=())
    # String padding (conformance/string_padding.py): the mode as written and the output_padding
    # as written; `padding`/`output_padding` above then hold the mode's resolution.
    padding_mode: str | None = None
    mode_output_padding: tuple[int, ...] | None = None

    @property
    def rank(self) -> int:
        return len(self.input.shape) - 2

    @property
    def geometry(self) -> Geometry:
        return Geometry(
            in_spatial=tuple(self.input.shape[2:]),
            kernel=tuple(self.weight.shape[2:]),
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
        )

    @property
    def in_channels(self) -> int:
        return self.input.shape[1] if len(self.input.shape) > 1 else 0

    @property
    def out_channels(self) -> int:
        return self.weight.shape[1] * self.groups if len(self.weight.shape) > 1 else 0

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(N, C_out, *out_spatial)`` by the output-size rule."""
        return (self.input.shape[0], self.out_channels, *self.geometry.out_spatial)

    @property
    def has_nonfinite_values(self) -> bool:
        """Whether a literal tensor holds NaN or ±Inf (random tensors are always finite)."""
        return any(t is not None and t.values is not None and not np.isfinite(t.values).all()
                   for t in (self.input, self.weight, self.bias))

    def params(self) -> dict:
        """Hyper-parameters as plain data (for records and reports)."""
        return {
            "input_shape": list(self.input.shape),
            "weight_shape": list(self.weight.shape),
            "bias": self.bias is not None,
            "stride": list(self.stride),
            "padding": [list(p) for p in self.padding],
            "output_padding": list(self.output_padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            **({"padding_mode": self.padding_mode, "mode_output_padding": list(self.mode_output_padding or ())}
               if self.padding_mode else {}),
        }

    def tensors(self, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(input, weight, bias) generated in float64 then rounded to ``dtype``, as float64."""
        x = round_to(self.input.generate(), dtype)
        w = round_to(self.weight.generate(), dtype)
        b = round_to(self.bias.generate(), dtype) if self.bias is not None else None
        return x, w, b


@dataclass
class LoadResult:
    cases: list[Case]
    problems: list[CaseProblem]
    files: list[str]


def _json_path(prefix: str, path: Iterable[Any]) -> str:
    out = prefix
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _nested_shape(values: Any, key: str) -> tuple[tuple[int, ...] | None, str | None]:
    """Shape of a rectangular nested list, or an error message when it is ragged."""
    if not isinstance(values, list):
        return (), None
    if not values:
        return (0,), None
    shapes = []
    for v in values:
        s, err = _nested_shape(v, key)
        if err:
            return None, err
        shapes.append(s)
    if any(s != shapes[0] for s in shapes):
        return None, "nested values are ragged (rows of different lengths)"
    return (len(values), *shapes[0]), None


def _tensor(raw: dict, file: str, cid: str, key: str, problems: list[CaseProblem]) -> TensorSpec | None:
    if "random" in raw:
        r = raw["random"]
        if "shape" in raw and list(raw["shape"]) != list(r["shape"]):
            problems.append(CaseProblem(file, cid, f"{key}.shape",
                                        f"shape {raw['shape']} contradicts random.shape {r['shape']}"))
            return None
        if r["distribution"] in ("uniform", "integers"):
            low, high = r.get("low", -1), r.get("high", 1)
            if low > high:
                problems.append(CaseProblem(file, cid, f"{key}.random", f"low {low} > high {high}"))
                return None
        return TensorSpec(shape=tuple(r["shape"]), random=dict(r))
    values = raw["values"]
    vshape, err = _nested_shape(values, key)
    if err:
        problems.append(CaseProblem(file, cid, f"{key}.values", err))
        return None
    arr = np.asarray(values, dtype=np.float64)
    if "shape" in raw:
        shape = tuple(raw["shape"])
        if int(np.prod(shape)) != arr.size:
            problems.append(CaseProblem(
                file, cid, f"{key}.values",
                f"{arr.size} values cannot be reshaped to shape {list(shape)} "
                f"({int(np.prod(shape))} elements)"))
            return None
        arr = arr.reshape(shape)
    else:
        shape = vshape or ()
    return TensorSpec(shape=tuple(int(s) for s in shape), values=arr)


def _case_from_raw(raw: dict, file: str, base: str, problems: list[CaseProblem]) -> Case | None:
    cid = raw["id"]
    n_before = len(problems)
    x = _tensor(raw["input"], file, cid, f"{base}.input", problems)
    w = _tensor(raw["weight"], file, cid, f"{base}.weight", problems)
    b = _tensor(raw["bias"], file, cid, f"{base}.bias", problems) if "bias" in raw else None
    if len(problems) > n_before or x is None or w is None:
        return None
    for key, spec in (("input", x), ("weight", w), ("bias", b)):
        msg = over_limit("elements", f"{key} shape {list(spec.shape)} elements", elements(spec.shape)) if spec else None
        if msg:
            problems.append(CaseProblem(file, cid, f"{base}.{key}", msg))
    if len(problems) > n_before:
        return None
    expected = raw["expected"]
    err = bool(expected.get("error", False))
    invalid: list[str] = []  # configuration problems: fatal unless expected.error

    rank = len(x.shape) - 2
    if len(x.shape) < 3 or len(x.shape) > 5:
        invalid.append(f"input must have rank 3, 4 or 5 (N, C, 1-3 spatial axes), got shape {list(x.shape)}")
    if len(w.shape) != len(x.shape):
        invalid.append(f"weight rank {len(w.shape)} differs from input rank {len(x.shape)}")
    groups = int(raw.get("groups", 1))
    rank_for_params = max(rank, 0)
    # Per-axis hyper-parameters; a per-axis list of the wrong length is an invalid configuration.
    stride = per_axis(raw.get("stride", 1), rank_for_params)
    dilation = per_axis(raw.get("dilation", 1), rank_for_params)
    out_pad = per_axis(raw.get("output_padding", 0), rank_for_params)
    padding = pad_pairs(raw.get("padding", 0), rank_for_params) if not isinstance(raw.get("padding"), str) \
        else ((0, 0),) * rank_for_params
    mode, mode_op = (raw["padding"], out_pad) if isinstance(raw.get("padding"), str) else (None, None)
    if mode and len(w.shape) == len(x.shape):  # string padding: resolved to canonical pairs here
        res, why = resolve_case_padding(mode, x.shape[2:], w.shape[2:], stride, dilation, out_pad)
        padding, out_pad = (res.padding, res.output_padding) if res else (padding, out_pad)
        invalid.extend([why] if why else [])
    if groups < 1:
        invalid.append(f"groups must be >= 1, got {groups}")
    if not invalid:
        if w.shape[0] != x.shape[1]:
            invalid.append(f"weight C_in {w.shape[0]} != input C_in {x.shape[1]}")
        elif x.shape[1] % groups:
            invalid.append(f"C_in {x.shape[1]} is not divisible by groups {groups}")
        geom = Geometry(tuple(x.shape[2:]), tuple(w.shape[2:]), stride, padding, out_pad, dilation)
        invalid.extend(geom.problems())
        if b is not None and b.shape != (w.shape[1] * groups,):
            invalid.append(f"bias shape {list(b.shape)} != (C_out,) = ({w.shape[1] * groups},)")
    exp_shape = tuple(expected["shape"]) if "shape" in expected else None
    exp_values = None
    if "values" in expected:
        arr = np.asarray(expected["values"], dtype=np.float64) if _nested_shape(expected["values"], "")[1] is None else None
        if arr is None:
            problems.append(CaseProblem(file, cid, f"{base}.expected.values", "nested values are ragged"))
            return None
        if exp_shape is not None:
            if arr.size != int(np.prod(exp_shape)):
                problems.append(CaseProblem(file, cid, f"{base}.expected.values",
                                            f"{arr.size} values cannot be reshaped to expected.shape {list(exp_shape)}"))
                return None
            arr = arr.reshape(exp_shape)
        exp_values = arr
        exp_shape = tuple(arr.shape)
    if err:
        if exp_values is not None or "shape" in expected:
            problems.append(CaseProblem(file, cid, f"{base}.expected",
                                        "expected.error cannot be combined with shape or values"))
        if not invalid:
            problems.append(CaseProblem(file, cid, f"{base}.expected.error",
                                        "the configuration is valid, yet the case expects an error"))
    else:
        for msg in invalid:
            problems.append(CaseProblem(file, cid, base, f"invalid configuration: {msg}"))
        if invalid:
            return None
        out = (x.shape[0], w.shape[1] * groups, *Geometry(
            tuple(x.shape[2:]), tuple(w.shape[2:]), stride, padding, out_pad, dilation).out_spatial)
        if exp_shape is not None and tuple(exp_shape) != out:
            problems.append(CaseProblem(
                file, cid, f"{base}.expected.shape",
                f"expected shape {list(exp_shape)} contradicts the output-size rule, which gives {list(out)}"))
            return None
        macs = elements(x.shape) * w.shape[1] * elements(w.shape[2:])
        for msg in (over_limit("elements", f"output shape {list(out)} elements", elements(out)),
                    over_limit("macs", "multiply-adds", macs)):
            if msg:
                problems.append(CaseProblem(file, cid, base, msg))
        if len(problems) > n_before:
            return None
    if "frameworks" in raw and not raw.get("reason"):
        problems.append(CaseProblem(file, cid, f"{base}.reason", "`frameworks` needs a `reason`"))
    if len(problems) > n_before:
        return None
    return Case(
        id=cid, file=file, source=raw.get("source", ""), description=raw.get("description", ""),
        tags=tuple(raw.get("tags", ())), input=x, weight=w, bias=b, stride=stride, padding=padding,
        output_padding=out_pad, dilation=dilation, groups=groups,
        dtypes=tuple(raw.get("dtypes", ("float32",))), expected_shape=exp_shape,
        expected_values=exp_values, expected_error=err, tolerance=raw.get("tolerance"),
        frameworks=tuple(raw["frameworks"]) if "frameworks" in raw else None,
        frameworks_reason=raw.get("reason", ""), invalid_reasons=tuple(invalid),
        padding_mode=mode, mode_output_padding=mode_op,
    )


def _flatten(v: Any) -> list:
    if isinstance(v, list):
        return [x for item in v for x in _flatten(item)]
    return [v]


def _schema_problems(instance: Any, schema: dict, file: str, cid: str, prefix: str) -> list[CaseProblem]:
    validator = jsonschema.Draft202012Validator(with_defs(schema))
    out = []
    for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        msg = e.message
        if e.validator == "anyOf" and not list(e.absolute_path) and prefix == "":
            msg = "the file needs a `cases:` list (or `sweeps:`)"
        elif e.validator == "anyOf" and ("values" in map(str, e.absolute_path)):
            bad = [v for v in _flatten(e.instance) if not isinstance(v, (int, float)) or isinstance(v, bool)]
            msg = f"values must be numbers, got {bad[:3]!r}"
            if any(isinstance(v, str) and "e" in v.lower() for v in bad):
                msg += " (YAML 1.1 reads 1.0e6 as a string: write 1.0e+6)"
        elif e.validator == "oneOf" and isinstance(e.instance, dict):
            msg = "give exactly one of `values` or `random`"
        elif e.validator == "additionalProperties":
            msg = msg.replace("Additional properties are not allowed", "unknown key(s)")
        out.append(CaseProblem(file, cid, _json_path(prefix, e.absolute_path), msg))
    return out


def load_file(path: str | os.PathLike, display: str | None = None) -> LoadResult:
    """Load one case file: schema, defaults merge, sweep expansion, semantic checks."""
    from conformance.sweep import expand_sweep  # local: sweep builds raw cases

    file = display or str(path)
    problems: list[CaseProblem] = []
    try:
        msg = over_limit("file_bytes", "file size in bytes", Path(path).stat().st_size)
        if msg:
            return LoadResult([], [CaseProblem(file, "", "", msg)], [file])
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LoadResult([], [CaseProblem(file, "", "", f"cannot read file: {exc}")], [file])
    try:
        data = load_yaml(text)
        nodes = expanded_nodes(data, limit("yaml_nodes"))
    except RecursionError:
        return LoadResult([], [CaseProblem(file, "", "", "not valid YAML: nested too deeply")], [file])
    except Exception as exc:  # yaml.YAMLError and constructor errors
        return LoadResult([], [CaseProblem(file, "", "", f"not valid YAML: {exc}")], [file])
    msg = over_limit("yaml_nodes", "YAML nodes with aliases expanded", nodes, counted_to_cap=True)
    if msg:
        return LoadResult([], [CaseProblem(file, "", "", msg)], [file])
    if not isinstance(data, dict):
        return LoadResult([], [CaseProblem(file, "", "", "the top level must be a mapping with `cases:`")], [file])
    file_probs = _schema_problems(data, FILE_SCHEMA, file, "", "")
    # Per-case errors are reported per case below; keep only file-level schema errors here.
    problems.extend(p for p in file_probs if not p.key.startswith("cases["))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or _schema_problems(defaults, DEFAULTS_SCHEMA, file, "", "defaults"):
        return LoadResult([], problems, [file])
    raw_cases = data.get("cases") or []
    if not isinstance(raw_cases, list):
        return LoadResult([], problems, [file])
    if any(p.key.startswith("sweeps") for p in problems):
        sweeps = []
    else:
        sweeps = data.get("sweeps") or []
    entries: list[tuple[str, Any]] = [(f"cases[{i}]", c) for i, c in enumerate(raw_cases)]
    for si, sw in enumerate(sweeps):
        generated, sweep_probs = expand_sweep(sw, file, f"sweeps[{si}]")
        problems.extend(sweep_probs)
        entries.extend((f"sweeps[{si}]<{c['id']}>", c) for c in generated)
    cases: list[Case] = []
    for label, raw in entries:
        if not isinstance(raw, dict):
            problems.append(CaseProblem(file, label, label, "a case must be a mapping"))
            continue
        merged = {**defaults, **raw}
        cid = merged.get("id") if isinstance(merged.get("id"), str) else label
        sp = _schema_problems(merged, CASE_SCHEMA, file, cid, label)
        if sp:
            problems.extend(sp)
            continue
        case = _case_from_raw(merged, file, label, problems)
        if case is not None:
            cases.append(case)
    return LoadResult(cases, problems, [file])


def discover(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """YAML case files under the given files/directories, sorted for stable order."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file()))
        else:
            found.append(p)
    return found


def load_cases(paths: Sequence[str | os.PathLike]) -> LoadResult:
    """Load every case file under ``paths``; ids must be unique across all files."""
    result = LoadResult([], [], [])
    first_seen: dict[str, str] = {}
    for f in discover(paths):
        if not f.exists():
            result.problems.append(CaseProblem(str(f), "", "", "no such file or directory"))
            continue
        r = load_file(f)
        result.files.extend(r.files)
        result.problems.extend(r.problems)
        for c in r.cases:
            if c.id in first_seen:
                result.problems.append(CaseProblem(
                    c.file, c.id, "id", f"duplicate case id, first defined in {first_seen[c.id]}"))
                continue
            first_seen[c.id] = c.file
            result.cases.append(c)
    return result


def select(cases: Iterable[Case], tags: Sequence[str] = (), ids: Sequence[str] = ()) -> list[Case]:
    """Cases having any of ``tags`` (all when empty) and matching any id glob in ``ids``."""
    out = []
    for c in cases:
        if tags and not set(tags) & set(c.tags):
            continue
        if ids and not any(fnmatch.fnmatchcase(c.id, pat) for pat in ids):
            continue
        out.append(c)
    return out


__all__ = ["Case", "CaseProblem", "LoadResult", "TensorSpec", "load_cases", "load_file", "select",
           "DTYPE_NAMES"]
