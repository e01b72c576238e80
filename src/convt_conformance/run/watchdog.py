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

A framework's set-up in a worker (import, ``configure``: at its first check there) runs under the
same watchdog, bounded by :func:`setup_limit`; the file then says which framework it was setting
up (its second line), so the controller leaves that framework out of the run as unavailable
(:func:`setup_failure`) instead of recording a crash of the check, and tells the workers so with a
marker beside the files (:func:`mark_unavailable`): a framework that dies or hangs while setting
up only in the workers costs one worker, not one a check.
"""

from __future__ import annotations

import faulthandler
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class Watchdog:
    """One per worker process: its file in the run's watchdog directory, re-armed per check."""

    def __init__(self, directory: str | os.PathLike[str], worker_id: str, limit_s: float) -> None:
        self.limit_s = limit_s
        self.path = Path(directory) / f"{worker_id}-{os.getpid()}.txt"
        self._fh: IO[str] = open(self.path, "w+", encoding="utf-8")  # noqa: SIM115 - lives with the worker
        self._fh.write("\n")
        self._fh.flush()
        self._done: IO[str] | None = None  # the current group item's finished records

    def capture_stderr(self) -> None:
        """Send this process's fd 2 (and the fault handler) to ``<worker>.log`` for good."""
        log = open(self.path.with_suffix(".log"), "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        os.dup2(log.fileno(), 2)
        faulthandler.enable(file=log, all_threads=True)
        self._log = log

    @contextmanager
    def guard(self, nodeid: str, *, setting_up: str = "", limit_s: float | None = None) -> Iterator[None]:
        """Run the body under the time limit (``limit_s``, else the check's; <= 0: none); the file
        names ``nodeid`` while it runs, and ``setting_up``, the framework being set up for it."""
        limit = self.limit_s if limit_s is None else limit_s
        fh = self._fh
        fh.seek(0)
        fh.truncate()
        fh.write(nodeid + "\n")
        if setting_up:
            fh.write(_SETUP_TAG + json.dumps({"framework": setting_up, "limit_s": limit}) + "\n")
        fh.flush()
        if limit > 0:
            faulthandler.dump_traceback_later(limit, exit=True, file=fh)
        try:
            yield
        finally:
            if limit > 0:
                faulthandler.cancel_dump_traceback_later()

    def start_group(self, item_nodeid: str) -> None:
        """A group item starts: its records file (beside the worker's file) is emptied and names
        the item on its first line; :meth:`done` appends each check's record as it ends, so the
        checks a worker finished before it died are not lost (:func:`finished_records`)."""
        if self._done is None:
            self._done = open(self.path.with_suffix(".done.jsonl"), "w+", encoding="utf-8")  # noqa: SIM115
        self._done.seek(0)
        self._done.truncate()
        self._done.write(item_nodeid + "\n")
        self._done.flush()

    def done(self, record_json: str) -> None:
        """A check of the current group item ended with this record (JSON, one line)."""
        if self._done is not None:
            self._done.write(record_json + "\n")
            self._done.flush()

    def unavailable(self, framework: str) -> str | None:
        """Why the controller left ``framework`` out of the run (:func:`mark_unavailable`), else None."""
        return marked_unavailable(self.path.parent, framework)


_SETUP_TAG = "setting up: "  # the second line of a worker's file while it sets a framework up
_MARK_SUFFIX = ".unavailable"  # the controller's marker of a framework left out (not a worker's .txt)


def setup_limit(setup_timeout: float, check_timeout: float) -> float:
    """The seconds a framework's set-up in a worker may take: ``--setup-timeout``, or where that
    is 0 (no preflight) ``--check-timeout`` (0 there too: no limit)."""
    return setup_timeout if setup_timeout > 0 else check_timeout


def _worker_files(directory: str | os.PathLike[str] | None, nodeid: str) -> Iterator[tuple[Path, str, dict[str, Any], str]]:
    """``(file, nodeid, set-up, rest)`` of each worker file naming ``nodeid`` on its first line
    (set-up: the framework being set up and its limit, {} when the check itself ran; rest: what the
    fault handler wrote after, if anything)."""
    if not directory or not Path(directory).is_dir():
        return
    for f in Path(directory).glob("*.txt"):
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        first, _, rest = text.partition("\n")
        if first != nodeid:
            continue
        setup: dict[str, Any] = {}
        if rest.startswith(_SETUP_TAG):
            line, _, rest = rest.partition("\n")
            try:
                setup = json.loads(line[len(_SETUP_TAG):])
            except ValueError:
                setup = {"framework": "?", "limit_s": 0}
        yield f, first, setup, rest


def _stuck_at(rest: str, marker: str) -> str:
    """Where the fault handler's dump ``rest`` says the main thread was: its innermost frames.
    One block per thread, newest thread first: the main thread, which runs the check (xdist's
    execnet receiver is another), is the last block, or the one naming ``marker``."""
    blocks = [b for b in rest.split("\nThread ") if "File " in b] or [rest]
    main = next((b for b in blocks if marker in b), blocks[-1])
    frames = [ln.strip() for ln in main.splitlines() if ln.strip().startswith("File ")]
    return "; ".join(frames[:3]) or rest[:300]


def timed_out(directory: str | os.PathLike[str] | None, nodeid: str) -> str | None:
    """If a worker was stopped by its watchdog while running ``nodeid``: the innermost frames
    of the traceback it wrote (where it was stuck), else None."""
    for _f, _id, _setup, rest in _worker_files(directory, nodeid):
        if rest.startswith("Timeout ("):
            return _stuck_at(rest, "convt_conformance/checking/check.py")
    return None


def setup_failure(directory: str | os.PathLike[str] | None, nodeid: str) -> tuple[str, str] | None:
    """If the worker that was running ``nodeid`` died, or was stopped by its watchdog, while
    setting up the check's framework (:meth:`Watchdog.guard` with ``setting_up``): that
    framework and why it cannot run, else None (the check itself was running)."""
    for f, _id, setup, rest in _worker_files(directory, nodeid):
        if not setup:
            continue
        name = str(setup.get("framework"))
        if rest.startswith("Timeout ("):
            return name, (f"setting it up in a worker (import, configure) did not finish within "
                          f"{float(setup.get('limit_s') or 0):g} s (--setup-timeout); it was in "
                          f"{_stuck_at(rest, 'convt_conformance/run/')}")
        try:
            log = f.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            log = ""
        lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
        said = next((ln for ln in lines if ln.startswith("Fatal Python error")), lines[-1] if lines else "(no output)")
        return name, f"the worker setting it up (import, configure) died: {said[:300]}"
    return None


def mark_unavailable(directory: str | os.PathLike[str] | None, framework: str, why: str) -> None:
    """The controller: tell the workers (their next check of ``framework``) that it is left out."""
    if directory and Path(directory).is_dir():
        tmp = Path(directory) / f".{framework}{_MARK_SUFFIX}.tmp"
        tmp.write_text(why, encoding="utf-8")
        os.replace(tmp, Path(directory) / f"{framework}{_MARK_SUFFIX}")


def marked_unavailable(directory: str | os.PathLike[str] | None, framework: str) -> str | None:
    """Why ``framework`` was left out of the run (:func:`mark_unavailable`), else None."""
    if not directory:
        return None
    try:
        return (Path(directory) / f"{framework}{_MARK_SUFFIX}").read_text(encoding="utf-8")
    except OSError:
        return None


def crash_output(directory: str | os.PathLike[str] | None, nodeid: str, lines: int = 30) -> str | None:
    """The last ``lines`` lines the worker that was running ``nodeid`` wrote to its standard error
    before it died (its native abort message and Python's fault handler dump), else None."""
    for f, _id, _setup, _rest in _worker_files(directory, nodeid):
        try:
            text = f.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return "\n".join(text.rstrip().splitlines()[-lines:]) or None
    return None


def running_check(directory: str | os.PathLike[str] | None, nodeids: Iterable[str]) -> str | None:
    """Which of ``nodeids`` (the checks of a group item) a worker's file names on its first line:
    the check that worker was running when it died, else None."""
    wanted = set(nodeids)
    if not directory or not Path(directory).is_dir():
        return None
    for f in Path(directory).glob("*.txt"):
        try:
            first = f.read_text(encoding="utf-8", errors="replace").partition("\n")[0]
        except OSError:
            continue
        if first in wanted:
            return first
    return None


def finished_records(directory: str | os.PathLike[str] | None, item_nodeid: str) -> list[str]:
    """The records (JSON lines) of the checks of group item ``item_nodeid`` that a worker
    finished before it died (:meth:`Watchdog.done`); a torn last line is left out."""
    if not directory or not Path(directory).is_dir():
        return []
    for f in Path(directory).glob("*.done.jsonl"):
        try:
            lines = f.read_text(encoding="utf-8", errors="replace").split("\n")
        except OSError:
            continue
        if lines and lines[0] == item_nodeid:
            out = []
            for line in lines[1:]:
                try:
                    json.loads(line)
                except ValueError:
                    continue
                out.append(line)
            return out
    return []
