"""Before a run starts its workers: set each requested framework up once in a child process
(import, ``configure``, ``devices``, and its convention probes), bounded in time and attempts, so a framework that crashes
or hangs while setting up is recorded as unavailable with the reason instead of making xdist
restart workers forever or hanging the run.

The frameworks are set up by as many children as the machine has cores, each child setting up one
framework after another as its parent hands them out (one Python start and one engine import a
child, not a framework; frameworks that share an import, as LiteRT does TensorFlow's, in the same
child). A child that dies or outlives ``--setup-timeout`` on a framework ends there: that framework
takes its remaining attempts in a process of its own, the next ones a new child.

``python -m convt_conformance.run.preflight NAME PRECISION`` prints one JSON line (version, devices,
settings) and exits 0, or exits non-zero; ``--each PRECISION`` reads framework names a line on
standard input and prints one such line each, with its ``framework``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from convt_conformance.run.line_process import LineProcess

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


def _one(name: str, precision: str, timeout_s: float, attempts: int = ATTEMPTS) -> tuple[str, dict[str, Any] | None, str]:
    """``name`` set up in a process of its own, up to ``attempts`` times (its result, or why not)."""
    why = ""
    for _attempt in range(attempts):
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


def _batches(frameworks: list[str]) -> list[list[str]]:
    """The frameworks in the order given, those of one affinity group (the set-up they share,
    ``Adapter.affinity_group``) in one batch, handed to one child."""
    from convt_conformance.adapters.registry import AdapterLoadError, adapter_class

    batches: dict[str, list[str]] = {}
    for name in frameworks:
        try:
            group = adapter_class(name).affinity_group("")
        except AdapterLoadError:
            group = name
        batches.setdefault(group, []).append(name)
    return list(batches.values())


class _Child:
    """A ``--each`` child (:class:`~convt_conformance.run.line_process.LineProcess`)."""

    def __init__(self, precision: str, env: dict[str, str]) -> None:
        self._process = LineProcess([sys.executable, "-m", "convt_conformance.run.preflight", "--each", precision], env)

    def set_up(self, name: str, timeout_s: float) -> dict[str, Any] | None:
        """The child's result for ``name``, or None where it died or outlived ``timeout_s``."""
        try:
            self._process.send(name)
            info = self._process.answer(time.monotonic() + timeout_s)
        except (OSError, TimeoutError, EOFError, ValueError):
            return None
        return info if info.pop("framework", None) == name else None

    def close(self) -> None:
        self._process.close()


def _set_up_batches(work: queue.Queue[list[str]], precision: str, timeout_s: float, env: dict[str, str],
                    out: list[tuple[str, dict[str, Any] | None, str]]) -> None:
    """One child's share: batches from ``work`` until none is left, a new child after a failure
    (the framework it failed on then tries again alone, :func:`_one`)."""
    child: _Child | None = None
    try:
        while True:
            try:
                batch = work.get_nowait()
            except queue.Empty:
                return
            for name in batch:
                child = child or _Child(precision, env)
                info = child.set_up(name, timeout_s)
                if info is not None:
                    out.append((name, info, ""))
                    continue
                child.close()
                child = None
                out.append(_one(name, precision, timeout_s, ATTEMPTS - 1))
    finally:
        if child is not None:
            child.close()


def preflight(frameworks: list[str], precision: str, timeout_s: float, children: int | None = None) -> dict[str, Any]:
    """``{"unavailable": {name: reason}, "frameworks": {name: info}}`` for the frameworks that
    crash, hang or fail while setting up (those the adapter itself reports unavailable, e.g. not
    installed, are left to the run, which records its own reason); set up by ``children`` child
    processes at once (default: one a core; module docstring)."""
    out: dict[str, Any] = {"unavailable": {}, "frameworks": {}}
    work: queue.Queue[list[str]] = queue.Queue()
    batches = _batches(frameworks)
    for batch in batches:
        work.put(batch)
    env: dict[str, str] = {}
    for name in frameworks:
        env = {**env, **_environment(name)}
    found: list[tuple[str, dict[str, Any] | None, str]] = []
    count = max(1, min(children or os.cpu_count() or 1, len(batches)))
    with ThreadPoolExecutor(max_workers=count) as pool:
        for _ in pool.map(lambda _k: _set_up_batches(work, precision, timeout_s, env, found), range(count)):
            pass
    for name, info, why in sorted(found, key=lambda r: frameworks.index(r[0])):
        if info is None:
            out["unavailable"][name] = why
        else:
            out["frameworks"][name] = info
    return out


def _set_up(name: str, precision: str) -> dict[str, Any]:
    """What setting ``name`` up here shows: its version, devices, settings and probe rows, or why
    it is unavailable."""
    from convt_conformance.adapters.registry import AdapterLoadError, get_adapter

    try:
        a = get_adapter(name)
    except AdapterLoadError as exc:
        return {"unavailable": str(exc)}
    if not a.installed() or a.unavailable_reason():
        return {"unavailable": a.unavailable_reason() if a.installed() else "not installed"}
    settings = a.configure(precision)
    from convt_conformance.checking.probes import probe_rows

    # the convention probes, while the framework is imported here anyway (the run's probe item reads them)
    return {"version": a.version(), "devices": a.devices(), "settings": settings, "probes": probe_rows([name])}


def _main(argv: list[str]) -> int:
    if argv[0] == "--each":
        for line in sys.stdin:
            name = line.strip()
            if name:
                print(json.dumps({"framework": name, **_set_up(name, argv[1])}, default=str), flush=True)
        return 0
    print(json.dumps(_set_up(argv[0], argv[1]), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
