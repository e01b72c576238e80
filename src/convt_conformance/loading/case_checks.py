"""Semantic checks of one raw case mapping (after the schema passed), turning it into a :class:`Case`.

Convention: PyTorch's (input ``(N, C_in, *S)``, weight ``(C_in, C_out/groups, *K)`` unflipped,
padding = per-axis ``(begin, end)`` pairs cut from the full scatter output). Every problem is
appended to ``problems`` as a located :class:`CaseProblem`; nothing here raises on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import jsonschema
import numpy as np

from convt_conformance.loading.schema import strict_validator, with_defs
from convt_conformance.model.case import NORMAL_SIGMAS, Case, CaseProblem, TensorSpec
from convt_conformance.model.limits import elements, fmt_count, over_limit
from convt_conformance.model.spec import ConvSpec, pad_pairs, per_axis
from convt_conformance.model.string_padding import resolve_case_padding
from convt_conformance.oracle.forward import work_buffers

_FLOAT_MAX = float(np.finfo(np.float64).max)
_INT64 = (-(2**63), 2**63 - 1)


def json_path(prefix: str, path: Iterable[Any]) -> str:
    out = prefix
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def nested_shape(values: Any) -> tuple[tuple[int, ...] | None, str | None]:
    """Shape of a rectangular nested list, or an error message when it is ragged."""
    if not isinstance(values, list):
        return (), None
    if not values:
        return (0,), None
    shapes: list[tuple[int, ...]] = []
    for v in values:
        s, err = nested_shape(v)
        if err or s is None:
            return None, err
        shapes.append(s)
    if any(s != shapes[0] for s in shapes):
        return None, "nested values are ragged (rows of different lengths)"
    return (len(values), *shapes[0]), None


def flatten(v: Any) -> list[Any]:
    if isinstance(v, list):
        return [x for item in v for x in flatten(item)]
    return [v]


def _as_float(v: Any) -> float | None:
    """``v`` as a float64, or None when it is an integer beyond float64's range."""
    try:
        return float(v)
    except OverflowError:
        return None


def to_float_array(values: Any) -> tuple[np.ndarray | None, str | None]:
    """Nested numbers as a float64 array, or why not (ragged, beyond float64's range)."""
    shape, err = nested_shape(values)
    if err:
        return None, err
    too_big = [v for v in flatten(values) if _as_float(v) is None]
    if too_big:
        return None, f"{len(too_big)} integer value(s) beyond float64's range (|v| > {_FLOAT_MAX:.4g})"
    return np.asarray(values, dtype=np.float64).reshape(shape or ()), None


def random_problems(r: dict[str, Any]) -> list[str]:
    """Why a ``random`` recipe cannot be generated as finite float64 values (empty when it can)."""
    out = []
    dist = r["distribution"]
    params = {k: r[k] for k in ("low", "high", "mean", "std") if k in r}
    for k, v in params.items():
        f = _as_float(v)
        if f is None or not math.isfinite(f):
            out.append(f"{k} must be a finite number, got {v if f is None or f != f else f!r}"
                       if f is not None else f"{k} is beyond float64's range")
    if out:
        return out
    if dist in ("uniform", "integers"):
        low, high = params.get("low", -1 if dist == "uniform" else -4), params.get("high", 1 if dist == "uniform" else 4)
        if low > high:
            out.append(f"low {low} > high {high}")
        elif dist == "uniform" and not math.isfinite(float(high) - float(low)):
            out.append(f"the range high - low = {float(high) - float(low)} is beyond float64's range")
        if dist == "integers":
            for k, v in (("low", low), ("high", high)):
                if float(v) != math.floor(float(v)):
                    out.append(f"{k} must be a whole number for distribution integers, got {v}")
                elif not _INT64[0] <= int(v) <= _INT64[1]:
                    out.append(f"{k} must be within int64 for distribution integers, got {v}")
            if not out and int(high) - int(low) >= 2**63:
                out.append(f"the range high - low of distribution integers must be below 2**63, got {low}..{high}")
    else:
        mean, std = float(params.get("mean", 0.0)), float(params.get("std", 1.0))
        if not math.isfinite(abs(mean) + NORMAL_SIGMAS * std) or abs(mean) + NORMAL_SIGMAS * std > _FLOAT_MAX:
            out.append(f"mean +- {NORMAL_SIGMAS} std must stay within float64's range (mean {mean}, std {std})")
    if not out:  # the recipe is sound: a one-element draw confirms NumPy accepts it
        try:
            TensorSpec(shape=(1,), random=dict(r)).generate()
        except Exception as exc:  # noqa: BLE001 - any refusal by NumPy is a problem of the case
            out.append(f"cannot be generated: {type(exc).__name__}: {exc}")
    return out


def tensor_spec(raw: dict[str, Any], file: str, cid: str, key: str, problems: list[CaseProblem]) -> TensorSpec | None:
    """The tensor of ``raw`` (``values`` or ``random``), size-checked before anything is allocated."""
    if "random" in raw:
        r = raw["random"]
        if "shape" in raw and list(raw["shape"]) != list(r["shape"]):
            problems.append(CaseProblem(file, cid, f"{key}.shape",
                                        f"shape {raw['shape']} contradicts random.shape {r['shape']}"))
            return None
        for msg in random_problems(r):
            problems.append(CaseProblem(file, cid, f"{key}.random", msg))
        if any(p.key == f"{key}.random" for p in problems):
            return None
        return TensorSpec(shape=tuple(r["shape"]), random=dict(r))
    n_given = len(flatten(raw["values"]))
    if "shape" in raw and elements(raw["shape"]) != n_given:
        problems.append(CaseProblem(file, cid, f"{key}.values",
                                    f"{n_given} values cannot be reshaped to shape {list(raw['shape'])} "
                                    f"({fmt_count(elements(raw['shape']))} elements)"))
        return None
    arr, err = to_float_array(raw["values"])
    if arr is None:
        problems.append(CaseProblem(file, cid, f"{key}.values", err or "not an array"))
        return None
    shape = tuple(raw["shape"]) if "shape" in raw else arr.shape
    return TensorSpec(shape=tuple(int(s) for s in shape), values=arr.reshape(shape))


def _expected(raw: dict[str, Any], file: str, cid: str, base: str, problems: list[CaseProblem]
              ) -> tuple[tuple[int, ...] | None, np.ndarray | None]:
    expected = raw["expected"]
    exp_shape = tuple(expected["shape"]) if "shape" in expected else None
    if "values" not in expected:
        return exp_shape, None
    arr, err = to_float_array(expected["values"])
    if arr is None:
        problems.append(CaseProblem(file, cid, f"{base}.expected.values", err or "not an array"))
        return None, None
    if exp_shape is not None:
        if arr.size != elements(exp_shape):
            problems.append(CaseProblem(file, cid, f"{base}.expected.values",
                                        f"{arr.size} values cannot be reshaped to expected.shape {list(exp_shape)}"))
            return None, None
        arr = arr.reshape(exp_shape)
    return tuple(arr.shape), arr


def case_from_raw(raw: dict[str, Any], file: str, base: str, problems: list[CaseProblem]) -> Case | None:
    """The validated :class:`Case` of a schema-valid raw mapping, or None (problems appended)."""
    cid = raw["id"]
    n_before = len(problems)
    x = tensor_spec(raw["input"], file, cid, f"{base}.input", problems)
    w = tensor_spec(raw["weight"], file, cid, f"{base}.weight", problems)
    b = tensor_spec(raw["bias"], file, cid, f"{base}.bias", problems) if "bias" in raw else None
    if len(problems) > n_before or x is None or w is None:
        return None
    for key, tensor in (("input", x), ("weight", w), ("bias", b)):
        if tensor is None:
            continue
        msg = over_limit("elements", f"{key} shape {list(tensor.shape)} elements", elements(tensor.shape))
        # one axis over the limit is refused even when another axis is 0 (NumPy cannot allocate it)
        msg = msg or next((over_limit("elements", f"{key} shape axis {i} extent", n)
                           for i, n in enumerate(tensor.shape) if over_limit("elements", "", n)), None)
        if msg:
            problems.append(CaseProblem(file, cid, f"{base}.{key}", msg))
    for k in ("atol", "rtol"):
        v = (raw.get("tolerance") or {}).get(k)
        if v is not None and not math.isfinite(_as_float(v) or math.inf):
            problems.append(CaseProblem(file, cid, f"{base}.tolerance.{k}", f"must be a finite number, got {v}"))
    if len(problems) > n_before:
        return None
    err = bool(raw["expected"].get("error", False))

    rank = len(x.shape) - 2
    groups = int(raw.get("groups", 1))
    rank_for_params = max(rank, 0)
    # Per-axis hyper-parameters; a per-axis list of the wrong length is an invalid configuration.
    stride = per_axis(raw.get("stride", 1), rank_for_params)
    dilation = per_axis(raw.get("dilation", 1), rank_for_params)
    out_pad = per_axis(raw.get("output_padding", 0), rank_for_params)
    padding = pad_pairs(raw.get("padding", 0), rank_for_params) if not isinstance(raw.get("padding"), str) \
        else ((0, 0),) * rank_for_params
    mode, mode_op = (raw["padding"], out_pad) if isinstance(raw.get("padding"), str) else (None, None)
    why = None
    if mode and len(w.shape) == len(x.shape):  # string padding: resolved to canonical pairs here
        res, why = resolve_case_padding(mode, x.shape[2:], w.shape[2:], stride, dilation, out_pad)
        padding, out_pad = (res.padding, res.output_padding) if res else (padding, out_pad)
    spec = ConvSpec(x.shape, w.shape, b.shape if b is not None else None, stride, padding, out_pad, dilation, groups)
    # configuration problems (convt_conformance/model/spec.py, the one statement of the rules): fatal unless
    # expected.error; a string padding that does not resolve leaves no geometry to check
    invalid = [*spec.structure_problems(), why] if why else spec.problems()
    exp_shape, exp_values = _expected(raw, file, cid, base, problems)
    if len(problems) > n_before:
        return None
    if err:
        if exp_values is not None or exp_shape is not None:
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
        out = spec.output_shape
        if exp_shape is not None and tuple(exp_shape) != out:
            problems.append(CaseProblem(
                file, cid, f"{base}.expected.shape",
                f"expected shape {list(exp_shape)} contradicts the output-size rule, which gives {list(out)}"))
            return None
        macs = elements(x.shape) * w.shape[1] * elements(w.shape[2:])
        for msg in (over_limit("elements", "output shape elements", elements(out)),
                    over_limit("macs", "multiply-adds", macs)):
            if msg:
                problems.append(CaseProblem(file, cid, base, msg.replace(
                    "output shape elements", f"output shape {list(out) if elements(out).bit_length() < 128 else '(huge)'} elements")))
    if len(problems) == n_before and not spec.structure_problems():
        # what the reference allocates beyond the tensors above (an invalid case too: a framework
        # that accepts it computes it), under the same limit: a 150-byte case with a huge
        # dilation, cropped back by its padding, made the scatter buffer gigabytes
        for name, shape in work_buffers(spec).items():
            msg = over_limit("elements", f"{name} {_shape_text(shape)} elements", elements(shape))
            if msg:
                problems.append(CaseProblem(file, cid, base, msg))
    if "frameworks" in raw and not raw.get("reason"):
        problems.append(CaseProblem(file, cid, f"{base}.reason", "`frameworks` needs a `reason`"))
    if len(problems) > n_before:
        return None
    return Case(
        id=cid, file=file, source=raw.get("source", ""), description=raw.get("description", ""),
        tags=tuple(raw.get("tags", ())), input=x, weight=w, bias=b, spec=spec,
        dtypes=tuple(raw.get("dtypes", ("float32",))), expected_shape=exp_shape,
        expected_values=exp_values, expected_error=err, tolerance=raw.get("tolerance"),
        frameworks=tuple(raw["frameworks"]) if "frameworks" in raw else None,
        frameworks_reason=raw.get("reason", ""), invalid_reasons=tuple(invalid),
        padding_mode=mode, mode_output_padding=mode_op,
    )


def _shape_text(shape: tuple[int, ...]) -> str:
    """A shape for a message (``(huge)`` when an extent has more digits than Python prints)."""
    return str(list(shape)) if all(n.bit_length() < 128 for n in shape) else "(huge)"


@cache
def _validator(schema_name: str) -> jsonschema.protocols.Validator:
    from convt_conformance.loading import schema as s

    return strict_validator(with_defs(getattr(s, schema_name)))


def _integer_hint(e: jsonschema.ValidationError) -> str | None:
    """A plain message for an integral float (or other non-integer) where an integer is required."""
    def walk(err: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
        yield err
        for c in err.context or []:
            yield from walk(c)

    for sub in walk(e):
        if sub.validator == "type" and "integer" in str(sub.validator_value) and isinstance(sub.instance, float):
            v = sub.instance
            if math.isfinite(v) and v == int(v):
                return f"{v!r} is a float; an integer is required here (write {int(v)})"
            return f"{v!r} is not an integer"
    return None


def schema_problems(instance: Any, schema_name: str, file: str, cid: str, prefix: str) -> list[CaseProblem]:
    """Schema violations of ``instance`` against ``convt_conformance.loading.schema.<schema_name>``, located."""
    validator = _validator(schema_name)
    out = []
    for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        msg = e.message
        path = list(e.absolute_path)
        if e.validator == "anyOf" and not path and prefix == "":
            msg = "the file needs a `cases:` list (or `sweeps:` / `invalid_grids:`)"
        elif e.validator == "anyOf" and ("values" in map(str, path)):
            bad = [v for v in flatten(e.instance) if not isinstance(v, (int, float)) or isinstance(v, bool)]
            msg = f"values must be numbers, got {bad[:3]!r}"
            if any(isinstance(v, str) and "e" in v.lower() for v in bad):
                msg += " (YAML 1.1 reads 1.0e6 as a string: write 1.0e+6)"
        elif e.validator == "oneOf" and isinstance(e.instance, dict):
            msg = "give exactly one of `values` or `random`"
        elif e.validator == "additionalProperties":
            msg = msg.replace("Additional properties are not allowed", "unknown key(s)")
        elif e.validator in ("maxItems", "minItems") and isinstance(e.instance, list):
            word = "at most" if e.validator == "maxItems" else "at least"
            msg = f"has {len(e.instance)} item(s); {word} {e.validator_value} allowed"
        elif e.validator == "pattern" and isinstance(e.instance, str) and "\n" in e.instance:
            msg = f"{e.instance!r} does not match {e.validator_value!r} (it holds a line break)"
        else:
            msg = _integer_hint(e) or msg
        if len(msg) > 400:
            msg = msg[:250] + " ... " + msg[-120:]
        out.append(CaseProblem(file, cid, json_path(prefix, path), msg))
    return out
