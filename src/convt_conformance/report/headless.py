"""Headless Chromium over the DevTools pipe (``--remote-debugging-pipe``), standard library only:
open a page, wait until a JavaScript condition holds, read its paint timings and marks, take a
screenshot, evaluate expressions. Used by the report's browser test and
benchmarks/report_paint.py; needs a ``chromium`` (Debian's package) on PATH.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def find_chromium() -> str | None:
    """The Chromium executable on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Page:
    """One browser with one tab, driven over the pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, chromium: str | None = None, width: int = 1280, height: int = 900) -> None:
        exe = chromium or find_chromium()
        if not exe:
            raise RuntimeError("no chromium on PATH")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="convt-chromium-")

        def wire() -> None:  # in the child: the pipe ends at fd 3 and 4, inheritable
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--remote-debugging-pipe",
             f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._call("Page.enable", session=True)

    def _send(self, method: str, params: dict[str, Any] | None, session: bool) -> int:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return self._id

    def _wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg: dict[str, Any] = json.loads(raw)
                if pred(msg):
                    return msg
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk

    def _call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        i = self._send(method, params, session)
        reply = self._wait(lambda m: m.get("id") == i)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def open(self, url: str, ready: str = "true", timeout: float = 120.0) -> dict[str, float]:
        """Navigate to ``url``; return seconds to the load event and until ``ready`` (a JS
        expression) is true, measured here from the navigation command."""
        t0 = time.perf_counter()
        self._call("Page.navigate", {"url": url}, session=True)
        self._wait(lambda m: m.get("method") == "Page.loadEventFired", timeout)
        load = time.perf_counter() - t0
        deadline = time.monotonic() + timeout
        while not self.evaluate(ready):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready!r} did not become true within {timeout} s")
            time.sleep(0.02)
        return {"load_s": load, "ready_s": time.perf_counter() - t0}

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        res = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        return res.get("result", {}).get("value")

    def timings(self) -> dict[str, float]:
        """The page's paint entries and performance marks, in ms since navigation start."""
        got = self.evaluate("JSON.stringify(performance.getEntriesByType('paint').concat("
                            "performance.getEntriesByType('mark')).map(e => [e.name, e.startTime]))")
        return {name: t for name, t in json.loads(got or "[]")}

    def screenshot(self, path: str | Path) -> None:
        """A PNG of the visible part of the page."""
        data = self._call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        self._proc.kill()
        self._proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
