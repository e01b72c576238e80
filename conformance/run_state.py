"""The state of one run in one process (the xdist controller, a worker, or the single process
of ``-n 0``): typed, so every part of the plugin reads the same fields."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.base import Adapter
from conformance.known import KnownDisagreement
from conformance.profiles import Profile, Shard
from conformance.watchdog import Watchdog


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
