"""Size limits that case validation enforces, so that a mistaken or hostile case file is refused
with a message instead of exhausting memory or time in every worker.

Each limit can be raised for a deliberate big run through its environment variable; the defaults
are far above every committed case (the largest tensor in ``cases/`` has a few hundred elements).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

#: name -> (environment variable, default, what it bounds)
LIMITS: dict[str, tuple[str, int, str]] = {
    "elements": ("CONFORMANCE_MAX_ELEMENTS", 2**24,
                 "elements of one tensor (input, weight, bias, output); 2**24 float64 = 128 MiB"),
    "macs": ("CONFORMANCE_MAX_MACS", 2**31,
             "multiply-adds of one transposed convolution (N * C_in * prod(S_in) * C_out/g * prod(K))"),
    "sweep_points": ("CONFORMANCE_MAX_SWEEP_POINTS", 100_000, "grid points of one sweep entry"),
    "file_bytes": ("CONFORMANCE_MAX_FILE_BYTES", 64 * 2**20, "bytes of one case file"),
    "yaml_nodes": ("CONFORMANCE_MAX_YAML_NODES", 2**22,
                   "YAML nodes of one case file with its aliases expanded (a few anchors are fine; "
                   "nested aliases that multiply, the 'billion laughs', are not)"),
}


class LimitSettingError(ValueError):
    """A ``CONFORMANCE_MAX_*`` environment variable that is not a positive integer."""


def limit(name: str) -> int:
    """The limit ``name`` (see :data:`LIMITS`), from its environment variable when set."""
    var, default, _ = LIMITS[name]
    raw = os.environ.get(var)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LimitSettingError(f"{var}={raw!r} is not an integer") from None
    if value < 1:
        raise LimitSettingError(f"{var}={raw!r} must be >= 1")
    return value


def over_limit(name: str, what: str, count: int, counted_to_cap: bool = False) -> str | None:
    """A message when ``count`` exceeds limit ``name``, else None (``counted_to_cap``: counting
    stopped past the cap, so ``count`` is a lower bound and is not quoted)."""
    cap = limit(name)
    if count <= cap:
        return None
    var, _, _ = LIMITS[name]
    amount = f"more than {cap:,}" if counted_to_cap else f"{fmt_count(count)} is over the limit of {cap:,}"
    return f"{what}: {amount} ({var} raises it)"


def fmt_count(count: int) -> str:
    """``count`` with thousands separators, or ``about 2**k`` when it is too large to print
    (an element count of thousands of axes has more digits than Python converts to text)."""
    if count.bit_length() > 128:
        return f"about 2**{count.bit_length() - 1}"
    return f"{count:,}"


def elements(shape: Sequence[int]) -> int:
    """Number of elements of ``shape`` (exact integer arithmetic, no overflow)."""
    return math.prod(int(s) for s in shape)
