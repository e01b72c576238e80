"""The "native library" of the workerfail test plugin: importing it fails as ``WORKERFAIL_MODE``
says, in pytest-xdist workers only."""

import ctypes
import os
import time

_MODE = os.environ.get("WORKERFAIL_MODE", "none") if os.environ.get("PYTEST_XDIST_WORKER") else "none"

if _MODE == "abort":
    os.abort()
elif _MODE == "segfault":
    ctypes.string_at(0)  # reads address 0: SIGSEGV
elif _MODE == "hang":
    time.sleep(10_000)
elif _MODE == "raise":
    raise ImportError("workerfail: simulated import failure in a worker")
