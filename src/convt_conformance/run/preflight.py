"""Before a run starts its workers: set each requested framework up once in a child process
(import, ``configure``, ``devices``, and its convention probes), bounded in time and attempts, so a framework that crashes
or hangs while setting up is recorded as unavailable with the reason instead of making xdist
restart workers forever or hanging the run.

``python -m convt_conformance.run.preflight NAME PRECISION`` prints one JSON line (version, devices,
settings) and exits 0, or exits non-zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ATTEMPTS = 2


def _environment(name: str) -> dict[str, str]:
    """The environment of the process setting ``name`` up: this one's, plus what its adapter's
    ``process_environment`` asks for where unset."""
    from convt_conformance.adapters.registry import AdapterLoadError, adapter_class

    try:
        wanted = adapter_class(name).process_environment()
    except AdapterLoadError:
        wanted = {}
    return {**wanted, **os.environ}


def _one(name: str, precision: str, timeout_s: float) -> tuple[str, dict[str, Any] | None, str]:
    why = ""
    for _attempt in range(1, ATTEMPTS + 1):
        try:
            p = subprocess.run([sys.executable, "-m", "convt_conformance.run.preflight", name, precision],
                               capture_output=True, text=True, timeout=timeout_s,
                               env=_environment(name))
        except subprocess.TimeoutExpired:
            why = f"setting it up (import, configure, devices) did not finish within {timeout_s:g} s"
            continue
        if p.returncode == 0:
            lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
            if lines:
                return name, json.loads(lines[-1]), ""
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        why = (f"the process setting it up died with signal {-p.returncode}: {tail}" if p.returncode < 0
               else f"setting it up failed (exit {p.returncode}): {tail}")
    return name, None, f"{why} ({ATTEMPTS} attempts)"


def preflight(frameworks: list[str], precision: str, timeout_s: float) -> dict[str, Any]:
    """``{"unavailable": {name: reason}, "frameworks": {name: info}}`` for the frameworks that
    crash, hang or fail while setting up (those the adapter itself reports unavailable, e.g. not
    installed, are left to the run, which records its own reason)."""
    out: dict[str, Any] = {"unavailable": {}, "frameworks": {}}
    with ThreadPoolExecutor(max_workers=max(len(frameworks), 1)) as pool:
        for name, info, why in pool.map(lambda n: _one(n, precision, timeout_s), frameworks):
            if info is None:
                out["unavailable"][name] = why
            else:
                out["frameworks"][name] = info
    return out


def _main(name: str, precision: str) -> int:
    from convt_conformance.adapters.registry import AdapterLoadError, get_adapter

    try:
        a = get_adapter(name)
    except AdapterLoadError as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return 0
    if not a.installed() or a.unavailable_reason():
        print(json.dumps({"unavailable": a.unavailable_reason() if a.installed() else "not installed"}))
        return 0
    settings = a.configure(precision)
    from convt_conformance.checking.probes import probe_rows

    # the convention probes, while the framework is imported here anyway (the run's probe item reads them)
    print(json.dumps({"version": a.version(), "devices": a.devices(), "settings": settings,
                      "probes": probe_rows([name])}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1], sys.argv[2]))
