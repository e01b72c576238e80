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
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        p = subprocess.run([sys.executable, "-m", "convt_conformance.run.isolate"], input=json.dumps(request),
                           capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        rec = _failed(case, adapter, label, device, dtype, precision, framework_version)
        rec.failure_kind = FailureKind.TIMEOUT
        rec.message = f"no result within --check-timeout {timeout_s:g} s: the check's own process was stopped"
    else:
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode == 0 and lines:
            rec = CheckRecord.from_dict(json.loads(lines[-1]))
        else:
            rec = _failed(case, adapter, label, device, dtype, precision, framework_version)
            how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
            rec.failure_kind = FailureKind.CRASH
            rec.message = f"the process running this check died ({how}; run in a process of its own)"
            rec.crash_output = crash_text(p.stderr)
    apply_known(rec, known, case)
    return rec


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


def _main() -> int:
    import faulthandler

    from convt_conformance.adapters.registry import get_adapter

    faulthandler.enable()  # a native crash leaves the Python stack on stderr (the record's crash_output)
    from convt_conformance.loading.cases import load_file

    req: dict[str, Any] = json.loads(sys.stdin.read())
    case = next(c for c in load_file(Path(req["file"]), display=req["display"]).cases if c.id == req["case"])
    a = get_adapter(req["adapter"])
    why = a.unavailable_reason()
    if why:
        print(why, file=sys.stderr)
        return 3
    a.configure(req["precision"])
    rec = run_check(case, a, req["api"], req["device"], req["dtype"], req["precision"], [])
    sys.stdout.write(json.dumps(rec.as_dict(), default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
