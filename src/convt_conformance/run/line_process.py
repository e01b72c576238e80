"""A child process that answers each line written to its standard input with one JSON line on
its standard output, read within a deadline (the preflight's children, the known crashes' fork
servers)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from typing import Any


class LineProcess:
    """The child started with ``argv`` and ``env`` (its standard error discarded)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self._buffer = b""
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)

    def send(self, line: str) -> None:
        """Write ``line`` (a newline added) to the child; OSError where it has gone."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def answer(self, deadline: float | None) -> dict[str, Any]:
        """The child's next answer line (lines not starting with ``{`` skipped), waiting until
        ``deadline`` (``time.monotonic``; None: for ever): TimeoutError past it, EOFError where
        the child closed its output (it exited), ValueError where the line is not JSON."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" not in self._buffer:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError("no answer in time")
                    if not sel.select(left):
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise EOFError("the child exited")
                    self._buffer += chunk
                line, _, self._buffer = self._buffer.partition(b"\n")
                if line.startswith(b"{"):
                    answer: dict[str, Any] = json.loads(line)
                    return answer

    def close(self) -> None:
        """Kill the child and wait for it (it holds nothing worth a graceful exit)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
