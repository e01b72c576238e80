"""Known crashes run in a process of their own.

A check that a known disagreement of ``kind: crash`` covers is expected to kill the process
running it (a native abort, a SIGFPE). Run in a worker, it takes the worker down: xdist starts a
new one, which imports every framework, collects again and restarts Keras' backend children
(~15 s of both cores a crash, most of it at the end of the run, where the crashing checks of
the invalid cases sit). Such a check runs instead in a short-lived child that imports only its
own framework (``python -m convt_conformance.run.isolate``, a JSON request on stdin, the record as JSON on
stdout); a child that dies is recorded exactly as a dead worker is (status ``crash``, failure
kind ``crash``, its last standard-error lines as ``crash_output``), a child that outlives the
time limit as ``timeout``, and the known entry then applies as anywhere else. A check that
does not crash is recorded as it would be in the worker (a ``kind: crash`` entry covers crashes
only, so a release that no longer crashes shows its real status). A check that crashed only
after other checks ran in the same process would show that status too: the isolation removes
no finding, it can only turn a crash that depended on earlier checks into the check's own result.

Where the adapter says its framework is safe to fork after its import (``fork_isolation``), the
child is forked from a server process of the worker's that has imported the framework once and
run nothing (:mod:`convt_conformance.run.forkserver`): a fresh process all the same, for
milliseconds instead of a framework import each (TensorFlow's is seconds). A server that cannot
start or stops answering leaves that framework's checks to the plain child.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from convt_conformance.adapters.base import Adapter
from convt_conformance.checking.check import apply_known, run_check
from convt_conformance.loading.known import KnownDisagreement, entries_where, find_known
from convt_conformance.model.case import Case
from convt_conformance.model.check_id import Check
from convt_conformance.model.env_facts import note_adapter
from convt_conformance.model.record import CheckRecord
from convt_conformance.model.status import FailureKind, Status
from convt_conformance.run.forkserver import ChildResult, ForkServer, ForkServerError, refuse, serve

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the convt_conformance package


def expected_to_crash(known: list[KnownDisagreement], case: Case, *, adapter: str, api: str, device: str,
                      dtype: str, precision: str) -> bool:
    """Whether an entry expecting a crash (and nothing else) covers this check on the installed
    releases (``api``: the API label, as in the results)."""
    entries = entries_where(known, "outcome=crash", lambda e: all(o.startswith("crash") for o in e.outcomes))
    return bool(entries) and find_known(entries, Check(case.id, adapter, api, device, dtype), precision, case,
                                        "crash") is not None


def check_or_isolate(case: Case, case_file: str, adapter: Adapter, api: str, device: str, dtype: str,
                     precision: str, known: list[KnownDisagreement], timeout_s: float) -> CheckRecord:
    """:func:`convt_conformance.checking.check.run_check` in this process, or, for a check expected to crash,
    :func:`run_isolated` (``case_file``: the file to load the case from; ``timeout_s`` <= 0: none)."""
    label = adapter.api_label(api, case.rank)
    note_adapter(adapter)  # a crash entry's `when:` may name its facts
    if not expected_to_crash(known, case, adapter=adapter.name, api=label, device=device, dtype=dtype,
                             precision=precision):
        return run_check(case, adapter, api, device, dtype, precision, known)
    return run_isolated(case, case_file, adapter.name, api, label, device, dtype, precision, known,
                        timeout_s if timeout_s > 0 else None, adapter.version())


def run_isolated(case: Case, case_file: str, adapter: str, api: str, label: str, device: str, dtype: str,
                 precision: str, known: list[KnownDisagreement], timeout_s: float | None,
                 framework_version: str | None) -> CheckRecord:
    """Run one check in a child process (see the module docstring) and return its record, the
    known disagreements applied. ``api``: the adapter's API name; ``label``: its column label."""
    request = {"file": case_file, "display": case.file, "case": case.id, "adapter": adapter, "api": api, "device": device,
               "dtype": dtype, "precision": precision}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    result = _in_forked_child(adapter, request, deadline)
    if result is None:  # (what a server that failed to start took counts against the limit)
        result = _in_new_process(request, deadline)
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if result.returncode is None:
        rec = _failed(case, adapter, label, device, dtype, precision, framework_version)
        rec.failure_kind = FailureKind.TIMEOUT
        rec.message = f"no result within --check-timeout {timeout_s:g} s: the check's own process was stopped"
    elif result.returncode == 0 and lines:
        rec = CheckRecord.from_dict(json.loads(lines[-1]))
    else:
        rec = _failed(case, adapter, label, device, dtype, precision, framework_version)
        code = result.returncode
        how = f"signal {-code}" if code < 0 else f"exit {code}"
        rec.failure_kind = FailureKind.CRASH
        rec.message = f"the process running this check died ({how}; run in a process of its own)"
        rec.crash_output = crash_text(result.stderr)
    apply_known(rec, known, case)
    return rec


def _child_environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (``time.monotonic``; None: no limit), at least a tenth."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.1)


def _in_new_process(request: dict[str, Any], deadline: float | None) -> ChildResult:
    """The check in a new Python process (it imports the engine and its framework), stopped at
    ``deadline``."""
    timeout_s = _left(deadline)
    try:
        p = subprocess.run([sys.executable, "-m", "convt_conformance.run.isolate"], input=json.dumps(request),
                           capture_output=True, text=True, timeout=timeout_s, env=_child_environment())
    except subprocess.TimeoutExpired:
        return ChildResult(None, "", "")
    return ChildResult(p.returncode, p.stdout, p.stderr)


#: this process's fork server per framework (None: it could not start, or the adapter is not
#: fork-safe: that framework's checks take a new process each)
_SERVERS: dict[str, ForkServer | None] = {}
#: how long a fork server may take to import its framework where checks have no time limit (with
#: one, the check's limit: what a new process has to import it and run the check)
SERVER_START_S = 300.0


def _in_forked_child(adapter: str, request: dict[str, Any], deadline: float | None) -> ChildResult | None:
    """The check in a child forked from this process's server for ``adapter`` (started at its
    first expected crash), stopped at ``deadline``; None where there is no server."""
    if adapter not in _SERVERS:
        _SERVERS[adapter] = _start_server(adapter, _left(deadline) or SERVER_START_S)
    server = _SERVERS[adapter]
    if server is None:
        return None
    try:
        return server.run(request, _left(deadline))
    except ForkServerError:
        _SERVERS[adapter] = None
        return None


def _start_server(adapter: str, start_timeout_s: float) -> ForkServer | None:
    from convt_conformance.adapters.registry import AdapterLoadError, adapter_class

    try:
        if not adapter_class(adapter).fork_isolation:
            return None
    except AdapterLoadError:
        return None
    folder = Path(tempfile.mkdtemp(prefix=f"conformance-isolate-{adapter}-"))
    try:
        server = ForkServer([sys.executable, "-m", "convt_conformance.run.isolate", "--serve", adapter],
                            _child_environment(), folder, start_timeout_s)
    except (ForkServerError, OSError):
        _remove(folder)
        return None
    atexit.register(_remove, folder)
    return server


def close_servers() -> None:
    """End this process's fork servers (at exit; a test between its settings)."""
    for server in _SERVERS.values():
        if server is not None:
            server.close()
    _SERVERS.clear()


atexit.register(close_servers)


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


_NATIVE = re.compile(r"^F\d{4} |Check failed|Fatal|terminate called|Assertion|Segmentation|Floating point")


def crash_text(stderr: str, head: int = 6, tail: int = 24) -> str | None:
    """What a dead process's standard error says: the first lines of its native abort message
    (an XLA ``Check failed``, a C++ ``terminate``) and the last ``tail`` lines (Python's fault
    handler stack), or None when it wrote nothing."""
    lines = [ln for ln in stderr.rstrip().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if _NATIVE.search(ln)), None)
    if start is None or start + head >= len(lines) - tail:
        return "\n".join(lines[max(0, start or 0, len(lines) - head - tail):]) or None
    return "\n".join([*lines[start:start + head], "...", *lines[-tail:]])


def _failed(case: Case, adapter: str, label: str, device: str, dtype: str, precision: str,
            framework_version: str | None) -> CheckRecord:
    rec = CheckRecord.for_case(case, adapter=adapter, api=label, device=device, dtype=dtype, precision=precision,
                               framework_version=framework_version)
    rec.status = Status.CRASH
    return rec


def _check(request: dict[str, Any], adapter: Adapter) -> int:
    """A child's work: the requested check on ``adapter`` (imported, not configured), its record
    as one JSON line on standard output."""
    from convt_conformance.loading.cases import load_file

    case = next(c for c in load_file(Path(request["file"]), display=request["display"]).cases
                if c.id == request["case"])
    adapter.configure(request["precision"])
    rec = run_check(case, adapter, request["api"], request["device"], request["dtype"], request["precision"], [])
    sys.stdout.write(json.dumps(rec.as_dict(), default=str) + "\n")
    sys.stdout.flush()
    return 0


def _main(argv: list[str]) -> int:
    """``python -m convt_conformance.run.isolate``: one check, its request as JSON on standard
    input; ``--serve ADAPTER``: the fork server of that framework (:mod:`convt_conformance.run.forkserver`)."""
    import faulthandler

    from convt_conformance.adapters.registry import get_adapter
    from convt_conformance.loading.cases import load_file  # noqa: F401 - imported once, before any fork

    faulthandler.enable()  # a native crash leaves the Python stack on stderr (the record's crash_output)
    if argv[:1] == ["--serve"]:
        a = get_adapter(argv[1])
        why = a.unavailable_reason() if a.fork_isolation else f"{a.name} is not forked after its import"
        return refuse(why) if why else serve(lambda request: _check(request, a))
    req: dict[str, Any] = json.loads(sys.stdin.read())
    a = get_adapter(req["adapter"])
    why = a.unavailable_reason()
    if why:
        print(why, file=sys.stderr)
        return 3
    return _check(req, a)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
