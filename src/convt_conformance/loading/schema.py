"""JSON Schema (draft 2020-12) of a case file, as described in docs/case-format.md.

Structure only; shape consistency and hyper-parameter validity are checked in
``convt_conformance.loading.cases`` after the schema passes.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from convt_conformance.loading.invalid_grid import INVALID_GRID_SCHEMA
from convt_conformance.model.string_padding import MODES as PADDING_MODES

DTYPE_ENUM = ["float16", "bfloat16", "float32", "float64"]

_number = {"type": "number"}  # YAML .nan/.inf load as floats, which JSON Schema accepts
_nested_numbers = {
    "anyOf": [_number, {"type": "array", "items": {"$ref": "#/$defs/nested"}}],
}
# At most 8 axes: valid tensors have 3 to 5; a few more let an `expected.error` case show a bad rank.
MAX_AXES = 8
_shape = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": MAX_AXES}
# Full-string match: in Python's re, `$` also matches before a final newline.
ID_PATTERN = r"\A[a-z0-9][a-z0-9._-]*\Z"
TAG_PATTERN = r"\A[A-Za-z0-9._-]+\Z"
_int_or_axes = {
    "anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1}]
}
_padding = {
    "anyOf": [
        {"enum": list(PADDING_MODES)},  # string padding: convt_conformance/model/string_padding.py
        {"type": "integer"},
        {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    {"type": "integer"},
                    {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                ]
            },
        },
    ]
}
_random = {
    "type": "object",
    "required": ["shape", "distribution", "seed"],
    "additionalProperties": False,
    "properties": {
        "shape": _shape,
        "distribution": {"enum": ["uniform", "normal", "integers"]},
        "low": _number,
        "high": _number,
        "mean": _number,
        "std": {"type": "number", "exclusiveMinimum": 0},
        "seed": {"type": "integer", "minimum": 0},
    },
}
_tensor = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"shape": _shape, "values": {"$ref": "#/$defs/nested"}, "random": _random},
    "oneOf": [{"required": ["values"]}, {"required": ["random"]}],
}
_expected = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "shape": _shape,
        "values": {"$ref": "#/$defs/nested"},
        "error": {"type": "boolean"},
    },
    "minProperties": 1,
}
_case_properties = {
    "id": {"type": "string", "pattern": ID_PATTERN},
    "source": {"type": "string"},
    "description": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string", "pattern": TAG_PATTERN}},
    "input": _tensor,
    "weight": _tensor,
    "bias": _tensor,
    "stride": _int_or_axes,
    "padding": _padding,
    "output_padding": _int_or_axes,
    "dilation": _int_or_axes,
    "groups": {"type": "integer"},
    "dtypes": {"type": "array", "items": {"enum": DTYPE_ENUM}, "minItems": 1, "uniqueItems": True},
    "expected": _expected,
    "tolerance": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"atol": {"type": "number", "minimum": 0}, "rtol": {"type": "number", "minimum": 0}},
        "minProperties": 1,
    },
    "frameworks": {
        "type": "array",
        # framework names as registered (convt_conformance/adapters/registry.py); a plugin's name is valid too
        "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "minItems": 1,
    },
    "reason": {"type": "string"},
}

CASE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "input", "weight", "expected"],
    "properties": _case_properties,
}

# `defaults` may hold any case key except the per-case identity.
DEFAULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {k: v for k, v in _case_properties.items() if k != "id"},
}

# What each sweep key (in `grid` lists and in `fixed`) may hold; see convt_conformance.loading.sweep.
SWEEP_VALUE: dict[str, Any] = {
    "rank": {"type": "integer", "minimum": 1, "maximum": 3},
    "batch": {"type": "integer", "minimum": 1},
    "in_channels": {"type": "integer", "minimum": 1},
    "out_channels": {"type": "integer", "minimum": 1},
    "spatial": _int_or_axes, "kernel": _int_or_axes, "stride": _int_or_axes,
    "output_padding": _int_or_axes, "dilation": _int_or_axes, "padding": _padding,
    "groups": {"anyOf": [{"type": "integer"}, {"const": "depthwise"}]},
    "bias": {"type": "boolean"},
    "distribution": {"enum": ["integers", "uniform", "normal"]},
}

# `sweeps` (additive, see cases/README in CASE_FORMAT spirit): grids expanded into cases.
SWEEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "grid"],
    "properties": {
        "id": {"type": "string", "pattern": ID_PATTERN},
        "source": {"type": "string"},
        "description": {"type": "string"},
        "tags": _case_properties["tags"],
        "dtypes": _case_properties["dtypes"],
        "grid": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {k: {"type": "array", "minItems": 1, "items": v} for k, v in SWEEP_VALUE.items()},
        },
        "fixed": {"type": "object", "additionalProperties": False, "properties": SWEEP_VALUE},
        "seed": {"type": "integer", "minimum": 0},
    },
}

FILE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["cases"]}, {"required": ["sweeps"]}, {"required": ["invalid_grids"]}],
    "properties": {
        "defaults": DEFAULTS_SCHEMA,
        "cases": {"type": "array"},
        "sweeps": {"type": "array", "items": SWEEP_SCHEMA},
        "invalid_grids": {"type": "array", "items": INVALID_GRID_SCHEMA},  # convt_conformance/loading/invalid_grid.py
    },
    "$defs": {"nested": _nested_numbers},
}


def with_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Attach the shared ``$defs`` so a sub-schema validates on its own."""
    return {**schema, "$defs": FILE_SCHEMA["$defs"]}


def _is_strict_integer(_checker: object, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# JSON Schema's "integer" accepts integral floats (2.0); a case file's integers must be ints.
_StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer))


def strict_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A draft 2020-12 validator of ``schema`` whose ``integer`` refuses floats such as ``2.0``."""
    return _StrictValidator(schema)
