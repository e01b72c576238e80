"""Per-check time limit in pytest-xdist workers.

A framework call that never returns (a deadlock, a runaway compile) would otherwise hang the
whole run. Around each check a worker arms ``faulthandler.dump_traceback_later(limit, exit=True)``:
a C-level timer thread that, even while the main thread is stuck inside C code, writes every
thread's traceback to the worker's watchdog file and ends the process. xdist then reports the
check as crashed and starts a new worker; the controller reads the file, which names the check
on its first line, and records the check as ``crash`` with ``failure_kind: timeout`` and where it
was stuck. Only under xdist: with ``-n 0`` there is no process to sacrifice, so no limit.

The same worker sends its standard error (file descriptor 2: native libraries' abort messages,
Python's fault handler dump) to a log beside that file instead of the terminal, so a known
crash's stack dump lands in its record (``crash_output``), not in the middle of the progress.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class Watchdog:
    """One per worker process: its file in the run's watchdog directory, re-armed per check."""

    def __init__(self, directory: str | os.PathLike[str], worker_id: str, limit_s: float) -> None:
        self.limit_s = limit_s
        self.path = Path(directory) / f"{worker_id}-{os.getpid()}.txt"
        self._fh: IO[str] = open(self.path, "w+", encoding="utf-8")  # noqa: SIM115 - lives with the worker
        self._fh.write("\n")
        self._fh.flush()

    def capture_stderr(self) -> None:
        """Send this process's fd 2 (and the fault handler) to ``<worker>.log`` for good."""
        log = open(self.path.with_suffix(".log"), "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        os.dup2(log.fileno(), 2)
        faulthandler.enable(file=log, all_threads=True)
        self._log = log

    @contextmanager
    def guard(self, nodeid: str) -> Iterator[None]:
        """Run the body under the time limit; the file names ``nodeid`` while it runs."""
        fh = self._fh
        fh.seek(0)
        fh.truncate()
        fh.write(nodeid + "\n")
        fh.flush()
        if self.limit_s > 0:
            faulthandler.dump_traceback_later(self.limit_s, exit=True, file=fh)
        try:
            yield
        finally:
            if self.limit_s > 0:
                faulthandler.cancel_dump_traceback_later()


def timed_out(directory: str | os.PathLike[str] | None, nodeid: str) -> str | None:
    """If a worker was stopped by its watchdog while running ``nodeid``: the innermost frames
    of the traceback it wrote (where it was stuck), else None."""
    if not directory or not Path(directory).is_dir():
        return None
    for f in Path(directory).glob("*.txt"):
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        first, _, rest = text.partition("\n")
        if first == nodeid and rest.startswith("Timeout ("):
            # One block per thread, newest thread first: the main thread, which runs the check
            # (xdist's execnet receiver is another), is the last block. Innermost frames first.
            blocks = [b for b in rest.split("\nThread ") if "File " in b] or [rest]
            main = next((b for b in blocks if "convt_conformance/checking/check.py" in b), blocks[-1])
            frames = [ln.strip() for ln in main.splitlines() if ln.strip().startswith("File ")]
            return "; ".join(frames[:3]) or rest[:300]
    return None


def crash_output(directory: str | os.PathLike[str] | None, nodeid: str, lines: int = 30) -> str | None:
    """The last ``lines`` lines the worker that was running ``nodeid`` wrote to its standard error
    before it died (its native abort message and Python's fault handler dump), else None."""
    if not directory or not Path(directory).is_dir():
        return None
    for f in Path(directory).glob("*.txt"):
        try:
            first = f.read_text(encoding="utf-8", errors="replace").partition("\n")[0]
        except OSError:
            continue
        if first == nodeid:
            try:
                text = f.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None
            return "\n".join(text.rstrip().splitlines()[-lines:]) or None
    return None
