"""Test plugin: a framework that dies (``crash``) or hangs (``hang``) while it sets up, as chosen
by CRASHY_MODE; the preflight must leave it out of the run with the reason."""

from __future__ import annotations

import os
import time

from convt_conformance.adapters.base import Adapter


class CrashyAdapter(Adapter):
    name = "crashy"
    module = "crashy_convt"
    apis = ("conv_transpose",)
    gpu_capable = False

    def _import(self):
        import crashy_convt  # noqa: F401

    def configure(self, precision):
        mode = os.environ.get("CRASHY_MODE", "crash")
        if mode == "hang":
            time.sleep(10_000)
        os.abort()
