"""A process that imports a framework once and forks a fresh child for each request.

Starting a Python process that imports TensorFlow costs seconds of CPU; forking one that has
imported it (and run nothing) costs milliseconds. The server (:func:`serve`, in its own process)
reads one JSON request a line on standard input, forks, and the child handles the request with
its standard output and error written to the two files the request names, then exits; the server
answers with the child's pid at once and with its exit code once it ended (``-N``: killed by
signal N, as :mod:`subprocess` says it). :class:`ForkServer` is the client side: it starts the
server, sends a request and waits for the answer within a time limit, killing the child past it.

Only a process that has run none of a framework's operations is forked: a runtime's thread pools
start at its first operation, and a fork keeps only the forking thread, so each child starts them
itself. Whether a framework is safe to fork after its import is its adapter's fact
(``Adapter.fork_isolation``), tested per framework (tests/frameworks/test_fork_isolation.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convt_conformance.run.line_process import LineProcess


@dataclass(frozen=True)
class ChildResult:
    """How a child ended: its exit code (``-N``: signal N; None: stopped past its time limit) and
    what it wrote."""

    returncode: int | None
    stdout: str
    stderr: str


class ForkServerError(RuntimeError):
    """The server did not start, or stopped answering (the caller runs the request otherwise)."""


class ForkServer:
    """The client of one server process started with ``argv`` and ``env`` (its first line says
    ``{"ready": true}`` once it has imported what it forks from)."""

    def __init__(self, argv: list[str], env: dict[str, str], folder: Path, start_timeout_s: float) -> None:
        self._folder = folder
        self._count = 0
        self._server = LineProcess(argv, env)
        try:
            ready = self._server.answer(time.monotonic() + start_timeout_s)
        except (TimeoutError, EOFError, ValueError) as exc:
            self._server.close()
            raise ForkServerError(f"the fork server did not start: {exc}") from exc
        if not ready.get("ready"):
            self._server.close()
            raise ForkServerError(str(ready.get("unavailable") or "the fork server did not start"))

    def run(self, request: dict[str, Any], timeout_s: float | None) -> ChildResult:
        """Handle ``request`` in a forked child; its exit code None where it outlived ``timeout_s``
        (None: no limit) and was killed. Raises :class:`ForkServerError` where the server itself
        fails (it is then closed)."""
        self._count += 1
        out, err = self._folder / f"{self._count}.out", self._folder / f"{self._count}.err"
        try:
            self._server.send(json.dumps({"request": request, "stdout": str(out), "stderr": str(err)}))
            pid = int(self._server.answer(time.monotonic() + 60.0)["pid"])
            deadline = time.monotonic() + timeout_s if timeout_s is not None else None
            try:
                code: int | None = int(self._server.answer(deadline)["returncode"])
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._server.answer(time.monotonic() + 60.0)  # the server has reaped it
                code = None
        except (OSError, KeyError, ValueError, TimeoutError, EOFError) as exc:
            self.close()
            raise ForkServerError(f"the fork server stopped answering: {exc}") from exc
        try:
            return ChildResult(code, _read(out), _read(err))
        finally:
            out.unlink(missing_ok=True)
            err.unlink(missing_ok=True)

    def close(self) -> None:
        """End the server: it holds nothing but its imports, and between requests no child, so it
        is killed (a framework's own exit takes a second)."""
        self._server.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def serve(handle: Callable[[dict[str, Any]], int]) -> int:
    """The server's loop (run it once everything to fork from is imported): say ready, then for
    each request line fork a child that runs ``handle(request)`` (its exit code) with standard
    input from /dev/null and standard output and error to the request's files; answer its pid and
    then its exit code. Returns 0 when standard input closes."""
    _answer({"ready": True})
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        message = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                _redirect(0, os.devnull, os.O_RDONLY)
                _redirect(1, message["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                _redirect(2, message["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                code = handle(message["request"])
            except BaseException:  # noqa: BLE001 - the child reports anything and exits
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _answer({"returncode": os.waitstatus_to_exitcode(status)})
    return 0


def refuse(reason: str) -> int:
    """The server's answer where it cannot start (instead of :func:`serve`)."""
    _answer({"unavailable": reason})
    return 3


def _redirect(fd: int, path: str, flags: int) -> None:
    new = os.open(path, flags, 0o600)
    os.dup2(new, fd)
    os.close(new)


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()
