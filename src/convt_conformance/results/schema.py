"""JSON Schema (draft 2020-12) of a results file, every format this version reads, and the checks a
schema cannot say: what :func:`convt_conformance.results.store.read_results` refuses before any
command uses a file.

A results file is input like a case file: ``report``, ``compare``, ``merge``, ``repro`` and the
release commands read files written elsewhere. So every value a command uses is typed here:

- the document (``environment``, ``selection``, ``problems`` ...; :data:`DOCUMENT_SCHEMA`);
- a record of version 1 (:data:`RECORD_SCHEMA`, also each line a run in progress streamed): a
  status from :class:`convt_conformance.model.status.Status`, a failure kind from
  :class:`convt_conformance.model.status.FailureKind`, the identity fields in the form of a check id
  (``model/check_id.py``: a case id, an adapter name, an API label without spaces or control
  characters, ``cpu`` / ``gpu``, a dtype name), numbers finite (a non-finite error is the string
  ``'inf'``, ``'-inf'`` or ``'nan'``), integers integers (``2.0`` is refused);
- the compact form, schemas 2 and 3 (``results/compact.py``; :data:`COMPACT_SCHEMA_DOC`): the
  tables (``cases``, ``versions``, ``native_calls``, ``tolerances``, ``knowns``, ``messages``) and
  records whose table fields hold an index.

What a schema cannot say, :func:`semantic_problems` checks: a table index within its table, one
record per check id (a duplicate is refused, naming both), a gradient API naming a known
quantity, a cotangent recipe whose bounds are in order. Unknown keys are kept (a newer writer's, a plugin's), never used.

Each problem is one line, ``<where>: <what>`` (``results[3].status: unknown status 'passed';
known: ...``), its values written with ``repr`` (no control character reaches a terminal).
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema

from convt_conformance.adapters.registry import NAME_RE
from convt_conformance.loading.schema import ID_PATTERN, MAX_AXES
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.model.check_id import format_check_id
from convt_conformance.model.status import FailureKind, Status

MAX_REPORTED = 10  # problems listed per file
#: the most shards a run may be split into (``--shard K/N``)
MAX_SHARDS = 100_000
#: the cotangent recipe's integer and uniform bounds (NumPy's generator takes int64)
MAX_BOUND = 2**53
MAX_INT = 2**63 - 1  # every whole number of a results file fits int64

_NULL: dict[str, Any] = {"type": "null"}
_STR: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_INT: dict[str, Any] = {"type": "integer"}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_NUM: dict[str, Any] = {"type": "number"}  # finite: see _finite_number


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null: a ``type`` list where the schema is a plain type, else an ``anyOf``."""
    if set(schema) == {"type"} and isinstance(schema["type"], str):
        return {"type": [schema["type"], "null"]}
    return {"anyOf": [schema, _NULL], "description": f"{schema.get('description', 'a valid value')} or null"}


_STR_OR_NULL = _or_null(_STR)
_STRINGS: dict[str, Any] = {"type": "array", "items": _STR}
#: a measured error: a finite number, or the string of a non-finite one (how the writer stores it)
_ERROR_VALUE: dict[str, Any] = {
    "anyOf": [_NUM, {"enum": ["inf", "-inf", "nan"]}, _NULL],
    "description": "a finite number, 'inf', '-inf', 'nan' or null",
}
_SHAPE: dict[str, Any] = {"type": "array", "items": _COUNT, "maxItems": MAX_AXES}
_SHAPE_OR_NULL = {"type": ["array", "null"], "items": _COUNT, "maxItems": MAX_AXES}
_INTS: dict[str, Any] = {"type": "array", "items": _INT, "maxItems": MAX_AXES}

#: the identity fields, in the form model/check_id.py parses
CASE_ID: dict[str, Any] = {"type": "string", "pattern": ID_PATTERN, "description": "a case id ([a-z0-9][a-z0-9._-]*)"}
ADAPTER: dict[str, Any] = {"type": "string", "pattern": NAME_RE.pattern,
                           "description": "an adapter name ([a-z][a-z0-9_]*)"}
API_LABEL: dict[str, Any] = {"type": "string", "pattern": r"\A[!-~]+\Z",
                             "description": "an API label (printable ASCII, no spaces)"}
DEVICE: dict[str, Any] = {"type": "string", "enum": ["cpu", "gpu"], "title": "device"}
DTYPE: dict[str, Any] = {"type": "string", "pattern": r"\A[a-z][a-z0-9_]*\Z", "description": "a dtype name"}
PRECISION: dict[str, Any] = {"enum": ["strict", "default", None], "title": "precision mode"}

_STATUSES = [s.value for s in Status]
STATUS: dict[str, Any] = {"enum": _STATUSES, "title": "status"}
#: a status behind a known disagreement's xfail / xpass ("" or null: none)
UNDERLYING_STATUS: dict[str, Any] = {"enum": [*_STATUSES, "", None], "title": "status"}
FAILURE_KIND: dict[str, Any] = {"enum": [*(k.value for k in FailureKind), "", None], "title": "failure kind"}

_PARAMS: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "input_shape": _SHAPE, "weight_shape": _SHAPE, "stride": _INTS, "output_padding": _INTS,
        "dilation": _INTS, "groups": _INT, "bias": _BOOL, "padding_mode": _STR_OR_NULL,
        "padding": {"type": "array", "maxItems": MAX_AXES,
                    "items": {"anyOf": [_INT, {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2}],
                              "description": "an integer or a (begin, end) pair"}},
    },
}
_TOLERANCE: dict[str, Any] = {
    "type": "object",
    "description": "an object",
    "properties": {
        **{k: _ERROR_VALUE for k in ("max", "atol", "rtol", "coefficient_of_R", "u_out", "u_acc", "floor")},
        "model": _STR, "accumulator": _STR, "n_terms": _COUNT, "tf32_allowed": _BOOL,
    },
    # the reproducer's tolerance: one model or the other, whole
    "dependentRequired": {"coefficient_of_R": ["u_out", "floor"], "atol": ["rtol"], "rtol": ["atol"]},
}
_NATIVE_CALL: dict[str, Any] = {
    "type": "object",
    "description": "an object",
    "required": ["function", "input_layout", "weight_layout", "output_layout", "weight_transform",
                 "padding_mapping"],
    "properties": {
        "function": _STR, "input_layout": _STR, "weight_layout": _STR, "output_layout": _STR,
        "weight_transform": _STR, "padding_mapping": _STR, "weight_flip": _BOOL,
        "weight_permutation": {"type": ["array", "null"], "items": _COUNT, "maxItems": MAX_AXES},
        "arguments": {"type": "object"}, "precision": {"type": "object"},
    },
}
_KNOWN: dict[str, Any] = {
    "type": "object",
    "description": "an object",
    "properties": {"reason": _STR_OR_NULL, "issue": _STR_OR_NULL, "id": _STR_OR_NULL,
                   "entry": {"type": ["integer", "null"]}},
}
_GRID: dict[str, Any] = {"type": "array", "items": {"type": "array"}}
_ARRAYS: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "slices": {"type": ["array", "null"], "items": {
            "type": "object",
            "properties": {"expected": _GRID, "actual": _GRID, "heatmap": _GRID},
            "dependentRequired": {"actual": ["expected"]},
        }},
    },
}
_COTANGENT: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "shape": _SHAPE, "seed": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
        "distribution": {"enum": ["integers", "uniform"], "title": "cotangent distribution"},
        "low": {"type": "number", "minimum": -MAX_BOUND, "maximum": MAX_BOUND},
        "high": {"type": "number", "minimum": -MAX_BOUND, "maximum": MAX_BOUND},
        "rounded_to": _STR, "seed_from": _STR,
    },
}
_REJECTION: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {"rule_named": _STR_OR_NULL, "expected_rules": _STRINGS, "kind": _STR_OR_NULL},
}

#: a version-1 record (a CheckRecord's ``as_dict``): field -> schema
RECORD_PROPERTIES: dict[str, Any] = {
    "case": CASE_ID, "adapter": ADAPTER, "api": API_LABEL, "device": DEVICE, "dtype": DTYPE,
    "status": STATUS, "failure_kind": FAILURE_KIND, "underlying_status": UNDERLYING_STATUS,
    "file": _STR_OR_NULL, "tags": {"type": ["array", "null"], "items": _STR}, "source": _STR_OR_NULL,
    "description": _STR_OR_NULL, "precision": PRECISION, "framework_version": _STR_OR_NULL,
    "params": _PARAMS, "expected_error": {"type": ["boolean", "null"]},
    "shape": _SHAPE_OR_NULL, "expected_shape": _SHAPE_OR_NULL,
    "max_abs_err": _ERROR_VALUE, "max_rel_err": _ERROR_VALUE, "max_ulp": _ERROR_VALUE,
    "mismatched": {"type": ["integer", "null"], "minimum": 0},
    "tolerance": _or_null(_TOLERANCE), "message": _STR_OR_NULL, "native_call": _or_null(_NATIVE_CALL),
    "known": _or_null(_KNOWN), "seconds": {"type": ["number", "null"]},
    "cotangent": _COTANGENT, "native_dtype": _or_null(DTYPE), "compute_dtype": _or_null(DTYPE),
    "arrays": _ARRAYS, "traceback": _STR_OR_NULL, "rejection": _REJECTION, "crash_output": _STR_OR_NULL,
    "nodeid": _STR_OR_NULL,
}
IDENTITY = ("case", "adapter", "api", "device", "dtype")
RECORD_SCHEMA: dict[str, Any] = {
    "type": "object", "required": [*IDENTITY, "status"], "properties": RECORD_PROPERTIES,
}

#: a compact record (schemas 2 and 3): a table field holds its value or an index into its table;
#: fields left out take their defaults (``device`` cpu); ``tolerance_max`` is the tolerance's max
_INDEX: dict[str, Any] = {"type": "integer", "minimum": 0}


def _or_index(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [_INDEX, schema], "description": f"a table index or {schema.get('description', 'a value')}"}


COMPACT_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["case", "adapter", "api", "dtype", "status"],
    "properties": {
        **RECORD_PROPERTIES,
        "native_call": {"anyOf": [_INDEX, _NATIVE_CALL, _NULL], "description": "a table index, an object or null"},
        "tolerance": {"anyOf": [_INDEX, _TOLERANCE, _NULL], "description": "a table index, an object or null"},
        "known": {"anyOf": [_INDEX, _KNOWN, _NULL], "description": "a table index, an object or null"},
        "message": {"type": ["integer", "string", "null"], "minimum": 0},
        "tolerance_max": _ERROR_VALUE,
    },
}
#: compact.CASE_FIELDS: what the ``cases`` table holds per case id
_CASE_ENTRY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {k: RECORD_PROPERTIES[k] for k in ("file", "tags", "source", "description", "params",
                                                        "expected_error", "expected_shape")},
}

_SELECTION: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "profile": _STR_OR_NULL, "digest": _STR_OR_NULL, "tags": _STR_OR_NULL, "dtypes": _STR_OR_NULL,
        "device": _STR_OR_NULL, "collected_checks": {"type": ["integer", "null"], "minimum": 0},
        "selected_checks": {"type": ["integer", "null"], "minimum": 0},
        "frameworks": {"type": ["array", "null"], "items": _STR},
        "shard": {"anyOf": [_NULL, {
            "type": "object", "required": ["index", "count"],
            "properties": {"index": {"type": "integer", "minimum": 1, "maximum": MAX_SHARDS},
                           "count": {"type": "integer", "minimum": 1, "maximum": MAX_SHARDS}},
        }], "description": f"null or {{index, count}}, whole numbers 1 to {MAX_SHARDS}"},
    },
}
_ENVIRONMENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "frameworks": {"type": ["object", "null"], "additionalProperties": _STR_OR_NULL},
        "unavailable": {"type": ["object", "null"], "additionalProperties": _STR_OR_NULL},
        "framework_devices": {"type": ["object", "null"], "additionalProperties": _STRINGS},
        "framework_settings": {"type": ["object", "null"], "additionalProperties": {"type": ["object", "null"]}},
        "devices": {"type": ["array", "null"], "items": _STR},
        "gpus": {"type": ["array", "null"], "items": {"type": "object"}},
        "precision": PRECISION, "python": _STR_OR_NULL, "platform": _STR_OR_NULL, "cpu": _STR_OR_NULL,
        "cpu_features": {"type": ["array", "null"], "items": _STR},
        "onednn_max_cpu_isa": _STR_OR_NULL,
        "adapter_origins": {"type": ["object", "null"], "additionalProperties": _STR},
        "adapter_problems": {"type": ["array", "null"], "items": _STR},
    },
}
#: the document of every format (its records checked by RECORD_SCHEMA or COMPACT_RECORD_SCHEMA)
DOCUMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema", "results"],
    "properties": {
        "schema": _STR, "results": {"type": "array"}, "complete": _BOOL, "in_progress": _BOOL,
        # the stream's file name, next to the results file (a name, never a path)
        "stream": {"type": ["string", "null"], "pattern": r"\A(?!\.\.?\Z)[^/\\\x00]+\Z",
                   "description": "a file name next to the results file"},
        "command": _STR, "started": _STR, "finished": _STR, "duration_s": {"type": ["number", "null"]},
        "missing_checks": {"type": ["integer", "null"], "minimum": 0}, "missing_ids": _STRINGS,
        "problems": _STRINGS, "warnings": _STRINGS, "merged_from": _STRINGS,
        "environment": _ENVIRONMENT, "selection": _SELECTION,
        "convention_probes": {"type": ["array", "null"], "items": {
            "type": "object", "properties": {"api": _STR_OR_NULL, "agrees": _BOOL}}},
    },
}
#: what the compact form adds: its tables
COMPACT_SCHEMA_DOC: dict[str, Any] = {
    "type": "object",
    "properties": {
        "cases": {"type": "object", "additionalProperties": _CASE_ENTRY},
        "versions": {"type": "object", "additionalProperties": _STR_OR_NULL},
        "native_calls": {"type": "array", "items": _NATIVE_CALL},
        "tolerances": {"type": "array", "items": _TOLERANCE},
        "knowns": {"type": "array", "items": _KNOWN},
        "messages": {"type": "array", "items": _STR},
    },
}


_FLOAT_MAX = sys.float_info.max


def _is_integer(_checker: object, instance: object) -> bool:
    return type(instance) is int and -MAX_INT - 1 <= instance <= MAX_INT


def _is_finite_number(_checker: object, instance: object) -> bool:
    if type(instance) is float:
        return math.isfinite(instance)
    return type(instance) is int and -_FLOAT_MAX <= instance <= _FLOAT_MAX


# integers are ints within int64 (JSON Schema's "integer" takes 2.0); numbers are finite floats
# (json.loads takes the NaN / Infinity tokens the writer never writes: a non-finite value is
# stored as a string; an integer literal past float64's range would overflow float())
_TYPES: dict[str, Callable[[Any], bool]] = {
    "integer": functools.partial(_is_integer, None), "number": functools.partial(_is_finite_number, None),
    "string": lambda x: type(x) is str, "boolean": lambda x: type(x) is bool,
    "object": lambda x: type(x) is dict, "array": lambda x: type(x) is list, "null": lambda x: x is None,
}
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_finite_number}))

Check = Callable[[Any], bool]
_ANNOTATIONS = frozenset({"title", "description", "$schema"})


def compile_schema(schema: dict[str, Any]) -> Check:
    """A fast yes/no check of ``schema``, the subset of JSON Schema this module uses (type, enum,
    pattern, properties, required, additionalProperties, dependentRequired, items, minItems,
    maxItems, minimum, maximum, anyOf), with the same answers as jsonschema and :data:`_TYPES`
    (jsonschema, which builds a validator at every step down, takes ~1 ms a record; a run's file
    holds 10^5). A keyword outside the subset is refused here, not ignored."""
    unknown = set(schema) - _ANNOTATIONS - {
        "type", "enum", "pattern", "properties", "required", "additionalProperties", "dependentRequired",
        "items", "minItems", "maxItems", "minimum", "maximum", "anyOf"}
    if unknown:
        raise ValueError(f"compile_schema: unsupported keyword(s) {sorted(unknown)}")
    checks: list[Check] = []
    if "type" in schema:
        kinds = [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
        checks.append(_type_check(kinds))
    if "enum" in schema:
        checks.append(_enum_check(list(schema["enum"])))
    if "pattern" in schema:
        checks.append(_pattern_check(schema["pattern"]))
    if "minimum" in schema or "maximum" in schema:
        lo, hi = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
        if schema.get("type") == "integer":  # one test for the commonest case: a whole number in a range
            int_lo, int_hi = max(lo, -MAX_INT - 1), min(hi, MAX_INT)
            checks[0] = lambda x: type(x) is int and int_lo <= x <= int_hi  # replaces the type test
        else:
            checks.append(lambda x: not _is_finite_number(None, x) or lo <= x <= hi)
    if "minItems" in schema or "maxItems" in schema:
        least, most = schema.get("minItems", 0), schema.get("maxItems", math.inf)
        checks.append(lambda x: not isinstance(x, list) or least <= len(x) <= most)
    if "items" in schema:
        checks.append(_items_check(compile_schema(schema["items"])))
    if "required" in schema:
        required = tuple(schema["required"])
        checks.append(lambda x: not isinstance(x, dict) or all(k in x for k in required))
    if "dependentRequired" in schema:
        needs = {k: tuple(v) for k, v in schema["dependentRequired"].items()}
        checks.append(lambda x: not isinstance(x, dict) or all(n in x for k, ns in needs.items() if k in x for n in ns))
    props = {k: compile_schema(v) for k, v in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    if props or extra is not True:
        other: Check | None = None if extra is True else (lambda _v: False) if extra is False else compile_schema(extra)
        checks.append(_object_check(props, other))
    if "anyOf" in schema:
        checks.append(_any_check([compile_schema(b) for b in schema["anyOf"]]))
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for c in checks:
            if not c(x):
                return False
        return True
    return check


def _type_check(kinds: list[str]) -> Check:
    tests = [_TYPES[k] for k in kinds]
    if len(tests) == 1:
        return tests[0]
    return _any_check(tests)


def _any_check(branches: list[Check]) -> Check:
    def check(x: Any) -> bool:
        for b in branches:
            if b(x):
                return True
        return False
    return check


def _enum_check(values: list[Any]) -> Check:
    """``enum`` of strings and null (what this module's enums hold) by set lookup; JSON Schema's
    equality otherwise (``true`` is not ``1``)."""
    if not all(v is None or isinstance(v, str) for v in values):
        return lambda x: any(x == v and type(x) is type(v) for v in values)
    strings, null = frozenset(v for v in values if v is not None), None in values
    return lambda x: (x in strings) if isinstance(x, str) else (null and x is None)


def _pattern_check(pattern: str) -> Check:
    """``pattern``, remembering the strings seen (a file repeats its adapters, APIs, dtypes)."""
    search, seen = re.compile(pattern).search, dict[str, bool]()

    def check(x: Any) -> bool:
        if not isinstance(x, str):
            return True
        hit = seen.get(x)
        if hit is None:
            hit = search(x) is not None
            if len(seen) < 100_000:
                seen[x] = hit
        return hit
    return check


def _items_check(item: Check) -> Check:
    def check(x: Any) -> bool:
        if isinstance(x, list):
            for v in x:
                if not item(v):
                    return False
        return True
    return check


def _object_check(props: dict[str, Check], other: Check | None) -> Check:
    """``properties`` and ``additionalProperties`` (``other``; None: anything)."""
    def check(x: Any) -> bool:
        if isinstance(x, dict):
            for k, v in x.items():
                c = props.get(k, other)
                if c is not None and not c(v):
                    return False
        return True
    return check


class _Schema:
    """One schema: the fast check of :func:`compile_schema`, and jsonschema's errors (worded by
    :func:`_message`) for what fails it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.is_valid = compile_schema(schema)
        self.validator = _Validator(schema)

    def problems(self, instance: Any, prefix: str, out: list[str]) -> None:
        """Append one line per place in ``instance`` that is wrong (the first error there: a value
        of the wrong type is not also an unknown value)."""
        if self.is_valid(instance):
            return
        seen: set[tuple[str, ...]] = set()
        before = len(out)
        for error in sorted(self.validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]):
            place = tuple(str(p) for p in error.absolute_path)
            if place in seen:
                continue
            seen.add(place)
            out.append(_message(_specific(error), prefix))
            if len(out) > MAX_REPORTED:
                return
        if len(out) == before:  # pragma: no cover - the two checks agree (tests/e2e/test_results_fuzz.py)
            out.append(f"{prefix or 'the document'}: does not match the results schema")


_DOCUMENT = _Schema(DOCUMENT_SCHEMA)
_COMPACT_DOC = _Schema(COMPACT_SCHEMA_DOC)
_RECORD = _Schema(RECORD_SCHEMA)
_COMPACT_RECORD = _Schema(COMPACT_RECORD_SCHEMA)

_TYPE_WORDS = {"string": "a string", "integer": "a whole number", "number": "a finite number",
               "object": "an object", "array": "a list", "boolean": "true/false", "null": "null"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(prefix: str, path: Iterable[Any]) -> str:
    out = prefix
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the document"


def _specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For an object or a list that fits no branch of an ``anyOf``: the error inside the branch of
    its own type (``tolerance.floor: missing``, not "must be an object or null")."""
    if error.validator == "anyOf" and isinstance(error.instance, dict | list):
        inner = [e for e in error.context or [] if e.validator != "type"]
        if inner:
            return _specific(inner[0])
    return error


def _message(error: jsonschema.ValidationError, prefix: str) -> str:
    """One line for one schema error: ``<where>: <what>``."""
    where = _where(prefix, error.absolute_path)
    v, schema, value = error.validator, error.schema, error.instance
    if v == "required":
        missing = [k for k in error.validator_value if isinstance(value, dict) and k not in value]
        return f"{_where(prefix, [*error.absolute_path, *missing[:1]])}: missing"
    if v == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where}: must be {' or '.join(_TYPE_WORDS.get(str(t), str(t)) for t in types)}, got {_json_type(value)}"
    if v == "enum":
        known = ", ".join(str(k) for k in error.validator_value if k not in ("", None))
        return f"{where}: unknown {schema.get('title', 'value')} {_show(value)}; known: {known}"
    if v in ("anyOf", "oneOf", "pattern"):
        return f"{where}: must be {schema.get('description', 'a valid value')}, got {_show(value)}"
    if v in ("minimum", "maximum"):
        word = ">=" if v == "minimum" else "<="
        return f"{where}: must be {word} {error.validator_value}, got {_show(value)}"
    if v in ("maxItems", "minItems"):
        word = "at most" if v == "maxItems" else "at least"
        return f"{where}: must have {word} {error.validator_value} items, got {len(value)}"
    if v == "dependentRequired":
        for key, needs in error.validator_value.items():
            lacking = [n for n in needs if key in value and n not in value]
            if lacking:
                return f"{where}: {key} given without {', '.join(lacking)}"
    if v == "additionalProperties":
        extra = sorted(set(value) - set(schema.get("properties", {})))
        return f"{where}: unknown key(s) {', '.join(map(_show, extra))}"
    return f"{where}: {error.message[:200]}"


def document_problems(data: Any, compact: bool) -> list[str]:
    """What is wrong with a parsed results document before its records are read: the document
    and, for the compact form, its tables and records (with the index checks that expanding
    needs). Version-1 records: :func:`record_problems`."""
    out: list[str] = []
    _DOCUMENT.problems(data, "", out)
    if not compact or not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return out
    _COMPACT_DOC.problems(data, "", out)
    for i, rec in enumerate(data["results"]):
        if len(out) > MAX_REPORTED:
            break
        _COMPACT_RECORD.problems(rec, f"results[{i}]", out)
    if not out:
        out += _index_problems(data)
    return out


def _index_problems(data: dict[str, Any]) -> list[str]:
    out = []
    sizes = {field: len(data.get(table) or []) for field, table in
             (("native_call", "native_calls"), ("tolerance", "tolerances"), ("known", "knowns"),
              ("message", "messages"))}
    for i, rec in enumerate(data["results"]):
        for field, size in sizes.items():
            value = rec.get(field)
            if _is_integer(None, value) and value >= size:
                table = {"native_call": "native_calls", "tolerance": "tolerances", "known": "knowns",
                         "message": "messages"}[field]
                out.append(f"results[{i}].{field}: index {value} is beyond the {size} entries of `{table}`")
                if len(out) > MAX_REPORTED:
                    return out
    return out


def record_problems(records: list[Any], prefix: str = "results") -> list[str]:
    """What is wrong with version-1 records (a schema-1 file's, a run's streamed records), by
    :data:`RECORD_SCHEMA`, then :func:`semantic_problems`."""
    out: list[str] = []
    for i, rec in enumerate(records):
        if len(out) > MAX_REPORTED:
            break
        _RECORD.problems(rec, f"{prefix}[{i}]", out)
    return out or semantic_problems(records, prefix)


def semantic_problems(records: list[Any], prefix: str = "results") -> list[str]:
    """What a schema cannot say of valid version-1 records: one record per check id (a duplicate
    names both), a cotangent recipe's bounds in order."""
    out: list[str] = []
    first: dict[tuple[str, ...], int] = {}
    for i, rec in enumerate(records):
        key = tuple(rec.get(f, "cpu" if f == "device" else None) for f in IDENTITY)
        if key in first:
            out.append(f"{prefix}[{i}]: duplicate record of check {format_check_id(*key)!r} "
                       f"(also {prefix}[{first[key]}]; one record per check)")
        else:
            first[key] = i
        try:
            gradient_quantity(rec["api"])
        except ValueError as exc:  # `<api>:grad_<what>` names a quantity this version does not know
            out.append(f"{prefix}[{i}].api: {exc}")
        cot = rec.get("cotangent")
        if isinstance(cot, dict) and isinstance(cot.get("low"), int | float) and isinstance(cot.get("high"), int | float) \
                and cot["low"] > cot["high"]:
            out.append(f"{prefix}[{i}].cotangent: low {cot['low']!r} is above high {cot['high']!r}")
        if len(out) > MAX_REPORTED:
            break
    return out


def one_line(problems: list[str]) -> str:
    """The problems as one line (``; ``-separated; past :data:`MAX_REPORTED`, a count of the rest)."""
    shown = problems[:MAX_REPORTED]
    more = " (and more)" if len(problems) > MAX_REPORTED else ""
    return "; ".join(shown) + more
