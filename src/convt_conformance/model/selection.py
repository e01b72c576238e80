"""How a run says what it selected: the one wording of the run's summary, its Markdown summary
and the report's header (from the results file's ``selection``: profile, collected and selected
check counts, shard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def selection_line(selection: Mapping[str, Any], ran: int) -> str:
    """``"N of M collected checks (profile P; --profile full runs all)"`` when the profile left
    checks out, ``"M checks, every collected check (profile P)"`` when it did not; ``ran`` is the
    number of checks with a record (the selection's count when the file has none)."""
    profile = selection.get("profile") or "?"
    collected = selection.get("collected_checks")
    selected = selection.get("selected_checks", ran)
    shard = selection.get("shard")
    where = f", shard {shard['index']}/{shard['count']}" if isinstance(shard, Mapping) and "index" in shard else ""
    if isinstance(collected, int) and isinstance(selected, int) and selected < collected:
        return f"{ran} of {collected} collected checks (profile {profile}{where}; --profile full runs all)"
    return f"{ran} checks, every collected check (profile {profile}{where})"
