"""The state of one run in one process (the xdist controller, a worker, or the single process
of ``-n 0``): typed, so every part of the plugin reads the same fields."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from convt_conformance.adapters.base import Adapter
from convt_conformance.adapters.registry import AdapterLoadError, get_adapter
from convt_conformance.loading.known import KnownDisagreement
from convt_conformance.loading.profiles import Profile, Shard
from convt_conformance.run import timeline
from convt_conformance.run.plan_file import wait_for_file
from convt_conformance.run.watchdog import Watchdog

#: how long a process waits for the preflight's file (its bound: 2 attempts of --setup-timeout a
#: framework, all at once; the file is written even when the preflight fails)
PREFLIGHT_WAIT_S = 3600.0


@dataclass
class RunState:
    frameworks: list[str]
    precision: str
    known: list[KnownDisagreement]
    known_problems: list[str]
    profile: Profile
    shard: Shard | None = None
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    t0: float = field(default_factory=time.time)
    adapters: dict[str, Adapter | None] = field(default_factory=dict)
    configured: dict[str, dict[str, Any]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    framework_devices: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seen_ids: dict[str, str] = field(default_factory=dict)
    watchdog_dir: str | None = None
    watchdog: Watchdog | None = None
    probe_collected: bool = False
    selection: dict[str, Any] = field(default_factory=dict)  # profile, shard, digest, totals
    selection_sent: bool = False  # a worker sends the selection with its first record
    #: what `conformance run`'s preflight saw per framework (version, devices, settings, probes)
    preflight: dict[str, dict[str, Any]] = field(default_factory=dict)
    preflight_path: str = ""  # its file, written once it is done ("": no preflight)
    preflight_loaded: bool = False

    def load_preflight(self, wait_s: float = PREFLIGHT_WAIT_S) -> None:
        """Take in the preflight's file once: wait for it (``conformance run`` writes it, always,
        when its preflight is done, while pytest starts), then leave out the frameworks it saw
        crash or hang while setting up. No file within ``wait_s``: the run goes on without."""
        if self.preflight_loaded or not self.preflight_path:
            return
        self.preflight_loaded = True
        path = Path(self.preflight_path)
        if not wait_for_file(path, wait_s, poll_s=0.05):
            return
        pre = json.loads(path.read_text(encoding="utf-8"))
        timeline.mark("preflight-read")
        self.unavailable.update(pre.get("unavailable", {}))
        self.preflight = pre.get("frameworks", {})
        self.frameworks = [f for f in self.frameworks if f not in self.unavailable]

    def preflight_pending(self) -> bool:
        """Whether ``conformance run``'s preflight is still setting the frameworks up (its file not
        written yet)."""
        return bool(self.preflight_path) and not self.preflight_loaded and not Path(self.preflight_path).exists()

    def instance(self, name: str) -> Adapter | None:
        """This process's adapter instance (created once, its framework not imported), or None
        for a plugin that fails to load (then named in ``unavailable``)."""
        if name not in self.adapters:
            try:
                self.adapters[name] = get_adapter(name)
            except AdapterLoadError as exc:  # a broken plugin: reported, the others still run
                self.adapters[name] = None
                self.unavailable[name] = str(exc)
        return self.adapters[name]

    def adapter(self, name: str, *, setup: bool = True) -> Adapter | None:
        """This process's adapter instance (created once per process), or None for a plugin that
        fails to load. ``setup``: also imported and configured (once per process; a framework that
        cannot be set up lands in ``unavailable``). Collection passes False: where the preflight
        already set the framework up, its devices come from there and the import waits for the
        framework's first check in this process (a worker that runs none never imports it)."""
        a = self.instance(name)
        if a is None or name in self.configured or name in self.unavailable:
            return a
        seen = self.preflight.get(name) or {}
        if not setup and isinstance(seen.get("devices"), list):
            self.framework_devices.setdefault(name, [str(d) for d in seen["devices"]])
            return a
        why = a.unavailable_reason() if a.installed() else f"{name} is not installed ({a.module or name})"
        if not why:
            try:
                self.configured[name] = a.configure(self.precision)
            except Exception as exc:  # a framework that cannot be configured cannot run a check
                why = f"{name} could not be configured: {type(exc).__name__}: {exc}"
        if why:
            self.unavailable[name] = why
        return a
