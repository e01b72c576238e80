"""The parent's side of one Keras backend's child process (``python -m convt_conformance.adapters.keras.worker``
with ``KERAS_BACKEND`` set): start it, send a request, receive a reply within a deadline, read
the tail of its stderr. Framing: an 8-byte little-endian length, then a pickle (protocol in
convt_conformance/adapters/keras/worker.py)."""

from __future__ import annotations

import os
import select
import struct
import subprocess
import sys
import tempfile


class KerasChild:
    """One backend's child process and its pipes."""

    def __init__(self, backend: str, precision: str) -> None:
        self.backend = backend
        self.stderr = tempfile.TemporaryFile()
        env = {**os.environ, "KERAS_BACKEND": backend, "CONFORMANCE_KERAS_PRECISION": precision,
               "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        # the folder holding the convt_conformance package (src/ or site-packages), never the
        # adapters folder itself: its framework folders would shadow the frameworks
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        self.proc = subprocess.Popen([sys.executable, "-m", "convt_conformance.adapters.keras.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env, cwd=root)
        self.hello: dict = {}

    def stderr_tail(self, n: int = 1500) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(size - n, 0))
        return self.stderr.read().decode("utf-8", "replace").strip()

    def _read(self, n: int, deadline: float) -> bytes:
        import time

        assert self.proc.stdout is not None  # Popen(stdout=PIPE)
        fd, buf = self.proc.stdout.fileno(), b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def receive(self, timeout: float) -> dict:
        import pickle
        import time

        deadline = time.monotonic() + timeout
        (n,) = struct.unpack("<Q", self._read(8, deadline))
        return pickle.loads(self._read(n, deadline))

    def send(self, msg: dict) -> None:
        import pickle

        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        assert self.proc.stdin is not None  # Popen(stdin=PIPE)
        self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()
