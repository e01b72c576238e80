"""The run's plan, computed once: xdist's controller computes the preselection
(:func:`convt_conformance.run.plugin._preselection`: the checks the profile, ``-k``, ``-m`` and
the shard select, as group items) while its workers start, and writes it to a file in the run's
folder; each worker reads it instead of computing the same plan again (planning enumerates
every check of the case library: seconds of both cores that every process of the run used to
spend before its first check).

The file holds ``{"plan": null}`` when the run has no preselection (its arguments are not plain
case files), ``{"failed": "<why>"}`` when the controller could not compute it (a worker then
computes it itself and meets the same problem, reported as before), or the plan: its group
items per case file, the checks selected before the shard, and the selection summary.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

#: the plan file's name in the run's folder (the watchdog folder xdist's workers are given)
PLAN_FILE = "plan.json"


def write_plan(directory: str, content: dict[str, Any]) -> None:
    """Write ``content`` as the run's plan file in ``directory`` (atomically: a reader never
    sees a partial file)."""
    path = Path(directory) / PLAN_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content), encoding="utf-8")
    os.replace(tmp, path)


def wait_for_file(path: Path, wait_s: float, poll_s: float = 0.02) -> bool:
    """Whether ``path`` exists within ``wait_s`` (a file another process of the run writes
    atomically: the preflight's findings, the plan), polled every ``poll_s``."""
    deadline = time.monotonic() + wait_s
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def read_plan(directory: str, wait_s: float) -> dict[str, Any] | None:
    """The run's plan file in ``directory`` once the controller has written it (waiting up to
    ``wait_s``), or None when none appeared (the caller then computes the plan itself)."""
    path = Path(directory) / PLAN_FILE
    if not wait_for_file(path, wait_s):
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
