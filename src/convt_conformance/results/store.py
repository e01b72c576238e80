"""The results file ``conformance-results/1``: environment plus one record per check.

The file is where records become JSON and back: :func:`write_results` takes a payload whose
records are :class:`convt_conformance.model.record.CheckRecord` (or record dicts) and writes their
plain values; :func:`read_results` checks every record and returns CheckRecords (statuses and
failure kinds as enums)."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convt_conformance.model.check_id import Check
from convt_conformance.model.env_facts import ISA_FLAGS, cpu_flags, onednn_cap_setting
from convt_conformance.model.record import as_records
from convt_conformance.model.status import FailureKind, Status
from convt_conformance.results.compact import COMPACT_SCHEMA, COMPACT_SCHEMAS, compact, expand

SCHEMA = COMPACT_SCHEMA  # what this version writes (convt_conformance/results/compact.py)
SUPPORTED_SCHEMAS = ("conformance-results/1", *COMPACT_SCHEMAS)


class ResultsFileError(ValueError):
    """A results file that cannot be read (missing, not UTF-8, not JSON, unknown schema, records
    with missing or mistyped fields)."""


_STR, _NUM, _OBJ, _LIST, _BOOL, _NONE = str, (int, float), dict, list, bool, type(None)
#: field -> accepted types, for each record (required ones first); bool is refused where a number is
#: wanted. A non-finite error is written as a string ('inf', 'nan'), hence str in the error fields.
RECORD_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "case": ((_STR,), True), "adapter": ((_STR,), True), "api": ((_STR,), True),
    "device": ((_STR,), True), "dtype": ((_STR,), True), "status": ((_STR,), True),
    "message": ((_STR, _NONE), False), "file": ((_STR, _NONE), False),
    "tags": ((_LIST, _NONE), False), "params": ((_OBJ, _NONE), False),
    "tolerance": ((_OBJ, _NONE), False), "known": ((_OBJ, _NONE), False),
    "native_call": ((_OBJ, _NONE), False), "failure_kind": ((_STR, _NONE), False),
    "underlying_status": ((_STR, _NONE), False),
    "max_abs_err": ((*_NUM, _STR, _NONE), False), "max_rel_err": ((*_NUM, _STR, _NONE), False),
    "framework_version": ((_STR, _NONE), False), "source": ((_STR, _NONE), False),
    "description": ((_STR, _NONE), False),
}
TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "environment": (_OBJ,), "problems": (_LIST,), "complete": (_BOOL,), "command": (_STR,),
    "convention_probes": (_LIST, _NONE), "started": (_STR,), "finished": (_STR,),
    "duration_s": (*_NUM, _NONE), "merged_from": (_LIST,),
}
ENVIRONMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "frameworks": (_OBJ, _NONE), "unavailable": (_OBJ, _NONE), "framework_devices": (_OBJ, _NONE),
    "framework_settings": (_OBJ, _NONE), "devices": (_LIST, _NONE), "gpus": (_LIST, _NONE),
    "precision": (_STR, _NONE),
}
#: fields whose string value must be one of a vocabulary: (what it is, the values)
RECORD_VALUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "status": ("status", tuple(s.value for s in Status)),
    "underlying_status": ("status", tuple(s.value for s in Status)),
    "failure_kind": ("failure kind", tuple(k.value for k in FailureKind)),
}
MAX_REPORTED = 10


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list",
             bool: "true/false", type(None): "null"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _wrong_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return True
    return not isinstance(value, types)


def results_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with a parsed results payload: ``results[i].field: ...`` (first few only)."""
    out: list[str] = []
    for key, types in TOP_FIELDS.items():
        if key in data and _wrong_type(data[key], types):
            out.append(f"{key}: must be {_type_names(types)}, got {type(data[key]).__name__}")
    env = data.get("environment")
    for key, types in ENVIRONMENT_FIELDS.items():
        if isinstance(env, dict) and key in env and _wrong_type(env[key], types):
            out.append(f"environment.{key}: must be {_type_names(types)}, got {type(env[key]).__name__}")
    if isinstance(data.get("problems"), list) and not all(isinstance(p, str) for p in data["problems"]):
        out.append("problems: must be a list of strings")
    for i, rec in enumerate(data["results"]):
        if len(out) >= MAX_REPORTED:
            out.append("... (more problems not listed)")
            break
        if not isinstance(rec, dict):
            out.append(f"results[{i}]: must be an object, got {type(rec).__name__}")
            continue
        for key, (types, required) in RECORD_FIELDS.items():
            if key not in rec:
                if required:
                    out.append(f"results[{i}].{key}: missing")
            elif _wrong_type(rec[key], types):
                out.append(f"results[{i}].{key}: must be {_type_names(types)}, got {type(rec[key]).__name__}")
        for key, (what, values) in RECORD_VALUES.items():
            value = rec.get(key)
            if isinstance(value, str) and (value or key == "status") and value not in values:
                out.append(f"results[{i}].{key}: unknown {what} {value!r}; known: {', '.join(values)}")
        tol = rec.get("tolerance")
        if isinstance(tol, dict) and "max" in tol and _wrong_type(tol["max"], (*_NUM, _STR, _NONE)):
            out.append(f"results[{i}].tolerance.max: must be a number or null, got {type(tol['max']).__name__}")
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The CPU's vector-ISA flags that decide which kernels oneDNN/XLA/Eigen pick (a finding can
    show on one ISA only, e.g. oneDNN's AMX bfloat16 kernels: known_disagreements.yaml `when:`)."""
    have = cpu_flags()
    return [f for f in ISA_FLAGS if f in have]


def _gpu_models() -> list[dict[str, str]]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [{"name": n.strip(), "driver": d.strip()}
            for n, _, d in (line.partition(",") for line in out.stdout.splitlines() if line.strip())]


def environment(frameworks: dict[str, str | None], precision: str, devices: list[str],
                unavailable: dict[str, str], framework_devices: dict[str, list[str]] | None = None,
                framework_settings: dict[str, dict[str, Any]] | None = None,
                adapter_problems: list[str] | None = None) -> dict[str, Any]:
    """Machine and framework facts recorded with every results file.

    ``devices``: the devices checks ran on; ``framework_devices``: what each framework saw
    (``cpu``, plus ``gpu`` where it sees a CUDA device), whether or not the run used it;
    ``framework_settings``: the precision/memory flags each adapter's ``configure`` set;
    ``adapter_origins``: where each registered adapter comes from (built-in or an entry point);
    ``adapter_problems``: plugins that could not be loaded, with their errors."""
    from convt_conformance.adapters.registry import entries

    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu": _cpu_model(),
        "cpu_features": cpu_features(),
        # oneDNN's ISA cap (torch's and TF's oneDNN read it): with it, `onednn.*` facts differ from the flags
        "onednn_max_cpu_isa": onednn_cap_setting(),
        "gpus": _gpu_models(), "frameworks": frameworks, "unavailable": unavailable,
        "devices": devices, "precision": precision,
        "framework_devices": dict(framework_devices or {}),
        "framework_settings": dict(framework_settings or {}),
        "adapter_origins": {n: f"{e.target} ({e.origin})" for n, e in entries().items()},
        "adapter_problems": list(adapter_problems or []),
    }


# a bare NaN / Infinity token of json.dumps(separators=(",", ":")): always between these characters
# (inside a string the same text only sends the document down the slow path, never wrong)
_NONFINITE_TOKEN = re.compile(r"[:,\[]-?(?:NaN|Infinity)[,\]}]")


def results_json(payload: dict[str, Any]) -> str:
    """The results document as compact JSON text, non-finite floats as their ``repr`` strings
    (``"nan"``, ``"inf"``: JSON has none). Each record goes through the C encoder once, and the
    walk that replaces them only where it wrote one (walking all of a broken release's 86,000
    records took ~9 s, most of its finish). ``dumps``, not ``dump``: json.dump encodes in Python,
    chunk by chunk."""
    doc = compact(payload)
    records = doc.get("results")
    if not isinstance(records, list) or list(doc)[-1] != "results":
        return _safe_dumps(doc)
    head = _safe_dumps({k: v for k, v in doc.items() if k != "results"})
    body = ",".join(_safe_dumps(r) for r in records)
    return f'{head[:-1]}{"," if len(doc) > 1 else ""}"results":[{body}]}}'


def _safe_dumps(obj: Any) -> str:
    text = json.dumps(obj, separators=(",", ":"), sort_keys=False, allow_nan=True)
    if _NONFINITE_TOKEN.search(text) is None:
        return text
    return json.dumps(_json_safe(obj), separators=(",", ":"), sort_keys=False, allow_nan=False)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_results(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same directory, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(results_json(payload))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _WRITTEN.clear()  # one run's file at a time: the payload is large
    _WRITTEN[str(path.resolve())] = (_signature(path), payload)


# the last file this process wrote: (its stat signature right after, the payload written)
_WRITTEN: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _signature(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def results_of_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`read_results` of a file this process has just written with :func:`write_results`
    (``conformance run``: pytest runs in its process), without reading it back: the payload it
    wrote, as long as the file is still the one written (same inode, size and modification time;
    otherwise it is read). Reading a broken release's 86,000 records back took ~5 s of its
    finish. The records are those written, before JSON (the run's CheckRecords; a non-finite
    float is still a float)."""
    p = Path(path)
    hit = _WRITTEN.pop(str(p.resolve()), None)
    try:
        same = hit is not None and _signature(p) == hit[0]
    except OSError:
        same = False
    if not same or hit is None or hit[1].get("in_progress"):  # in progress: the streamed records
        return read_results(p)
    return {**hit[1], "stored_schema": SCHEMA}


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results file, refusing schemas this version does not know and records with missing
    or mistyped fields (see :data:`RECORD_FIELDS`) or an unknown status or failure kind (see
    :data:`RECORD_VALUES`), with a message naming file, record and field. Its ``results`` are
    :class:`convt_conformance.model.record.CheckRecord`."""
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read results file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ResultsFileError(f"{path}: not a results file: not UTF-8 text ({exc})") from exc
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise ResultsFileError(f"{path}: not a JSON results file: {str(exc)[:300]}") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema not in SUPPORTED_SCHEMAS:
        raise ResultsFileError(
            f"{path}: results schema {schema!r} is not supported by this version "
            f"(supported: {', '.join(SUPPORTED_SCHEMAS)}); re-run the suite to produce a new file")
    if not isinstance(data.get("results"), list):
        raise ResultsFileError(f"{path}: `results` must be a list")
    if schema in COMPACT_SCHEMAS:
        data = expand(data)
    if data.get("in_progress"):
        data["results"] = _streamed(Path(path), data)
    problems = results_problems(data)
    if problems:
        raise ResultsFileError(f"{path}: not a valid results file:\n  " + "\n  ".join(problems))
    data["results"] = as_records(data["results"])
    return data


def _streamed(path: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a run still in progress (or whose controller died) streamed so far."""
    stream = path.with_name(str(data.get("stream") or path.name + ".stream.jsonl"))
    out = []
    try:
        for line in stream.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the last line of a process that died mid-write
    except OSError:
        pass
    return out


def result_key(rec: Mapping[str, Any]) -> Check:
    """Identity of a check across runs: its :class:`convt_conformance.model.check_id.Check`
    (case, adapter, api, device, dtype)."""
    return Check.of(rec)
