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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convt_conformance.model.check_id import Check
from convt_conformance.model.env_facts import ISA_FLAGS, cpu_flags, onednn_cap_setting
from convt_conformance.model.record import as_records
from convt_conformance.results.compact import COMPACT_SCHEMA, COMPACT_SCHEMAS, compact, expand
from convt_conformance.results.files import write_atomic
from convt_conformance.results.schema import document_problems, one_line, record_problems, semantic_problems

SCHEMA = COMPACT_SCHEMA  # what this version writes (convt_conformance/results/compact.py)
SUPPORTED_SCHEMAS = ("conformance-results/1", *COMPACT_SCHEMAS)


class ResultsFileError(ValueError):
    """A results file that cannot be read (missing, not UTF-8, not JSON, unknown schema, records
    with missing or mistyped fields)."""


def results_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with a parsed version-1 results payload (records as dicts): the document, each
    record and the duplicates (:mod:`convt_conformance.results.schema`), one line each, the first
    few only."""
    problems = document_problems(data, compact=False)
    return problems + (record_problems(data["results"]) if isinstance(data.get("results"), list) else [])


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


def write_results(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write atomically (:func:`convt_conformance.results.files.write_atomic`)."""
    path = write_atomic(path, results_json(payload))
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
    """Read a results file, refusing what :mod:`convt_conformance.results.schema` refuses (a schema
    this version does not know; a document, table or record with a missing, mistyped or unknown
    value: a status or failure kind outside the enums; a table index out of range; two records of
    one check) with one line naming the file, the record and the key. Its ``results`` are
    :class:`convt_conformance.model.record.CheckRecord`."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read results file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ResultsFileError(f"{path}: not a results file: not UTF-8 text ({exc})") from exc
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise ResultsFileError(f"{path}: not a JSON results file: {str(exc)[:300]}") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(schema, str) or schema not in SUPPORTED_SCHEMAS:
        shown = repr(schema) if len(repr(schema)) <= 80 else repr(schema)[:77] + "..."
        raise ResultsFileError(
            f"{path}: results schema {shown} is not supported by this version "
            f"(supported: {', '.join(SUPPORTED_SCHEMAS)}); re-run the suite to produce a new file")
    compact_form = schema in COMPACT_SCHEMAS
    problems = document_problems(data, compact_form)
    if not compact_form and not data.get("in_progress") and isinstance(data.get("results"), list):
        problems += record_problems(data["results"])
    if problems:
        raise ResultsFileError(f"{path}: not a valid results file: {one_line(problems)}")
    if compact_form:
        data = expand(data)
    if data.get("in_progress"):
        stream = _stream_of(Path(path), data)
        data["results"] = _streamed(stream)
        problems = record_problems(data["results"], prefix=f"{stream.name} records")
    else:
        problems = semantic_problems(data["results"]) if compact_form else []
    if problems:
        raise ResultsFileError(f"{path}: not a valid results file: {one_line(problems)}")
    data["results"] = as_records(data["results"])
    payload: dict[str, Any] = data
    return payload


def _stream_of(path: Path, data: dict[str, Any]) -> Path:
    """Where a run in progress streams its records: ``stream`` (a file name, checked by the schema)
    next to the results file."""
    return path.with_name(str(data.get("stream") or path.name + ".stream.jsonl"))


def _streamed(stream: Path) -> list[Any]:
    """The records a run still in progress (or whose controller died) streamed so far, non-finite
    floats as the results file stores them (``'nan'``, ``'inf'``)."""
    out = []
    try:
        for line in stream.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(_json_safe(json.loads(line)))
            except (json.JSONDecodeError, RecursionError, ValueError):
                break  # the last line of a process that died mid-write
    except OSError:
        pass
    return out


def result_key(rec: Mapping[str, Any]) -> Check:
    """Identity of a check across runs: its :class:`convt_conformance.model.check_id.Check`
    (case, adapter, api, device, dtype)."""
    return Check.of(rec)
