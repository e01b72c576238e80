"""Where a run's time goes, process by process: with ``CONFORMANCE_TIMELINE`` set to a folder,
every process of the run (xdist's controller and workers, or the single process) appends one
line per event to ``<folder>/<pid>.txt``: ``<unix time> <event> [detail]``. Events: ``configure``
(the plugin starts in the process), ``plan-start`` / ``plan-end`` (the run's plan made or read),
``preflight-read`` (the preflight's findings taken in), ``item <start> <adapter> <api label>
<dtype> <checks>`` (a group item ran from ``start`` to the line's time). Unset (the default):
nothing is written (an item still reads the clock once). ``benchmarks/timeline.py`` runs a run with it and
prints each process's timeline.
"""

from __future__ import annotations

import os
import time

#: the environment variable naming the folder the timelines go to
TIMELINE_ENV = "CONFORMANCE_TIMELINE"

_FOLDER = os.environ.get(TIMELINE_ENV, "")


def enabled() -> bool:
    """Whether this process writes its timeline."""
    return bool(_FOLDER)


def mark(event: str, *detail: object) -> None:
    """Append ``event`` (and ``detail``) at the current time to this process's timeline, if any."""
    if _FOLDER:
        line = " ".join([f"{time.time():.3f}", event, *map(str, detail)])
        with open(os.path.join(_FOLDER, f"{os.getpid()}.txt"), "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
