"""The results file ``conformance-results/1``: environment plus one record per check."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = "conformance-results/1"
SUPPORTED_SCHEMAS = (SCHEMA,)


class ResultsFileError(ValueError):
    """A results file that cannot be read (missing, not JSON, unknown schema)."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    from adapters.registry import entries

    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu": _cpu_model(),
        "gpus": _gpu_models(), "frameworks": frameworks, "unavailable": unavailable,
        "devices": devices, "precision": precision,
        "framework_devices": dict(framework_devices or {}),
        "framework_settings": dict(framework_settings or {}),
        "adapter_origins": {n: f"{e.target} ({e.origin})" for n, e in entries().items()},
        "adapter_problems": list(adapter_problems or []),
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_results(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same directory, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_json_safe(payload), fh, indent=1, sort_keys=False, allow_nan=False)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results file, refusing schemas this version does not know, with a clear message."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read results file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}: not a JSON results file: {exc}") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema not in SUPPORTED_SCHEMAS:
        raise ResultsFileError(
            f"{path}: results schema {schema!r} is not supported by this version "
            f"(supported: {', '.join(SUPPORTED_SCHEMAS)}); re-run the suite to produce a new file")
    if not isinstance(data.get("results"), list):
        raise ResultsFileError(f"{path}: `results` must be a list")
    return data


def result_key(rec: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """Identity of a check across runs: (case, adapter, api, device, dtype)."""
    return (rec["case"], rec["adapter"], rec["api"], rec["device"], rec["dtype"])
