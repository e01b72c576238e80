"""The one format of a check's id: ``<case>[<adapter>.<api>-<device>-<dtype>]``.

Case ids match ``[a-z0-9][a-z0-9._-]*`` (no ``[``), adapter names ``[a-z][a-z0-9_]*`` (no ``.``),
devices and dtypes contain no ``-``; an API label may contain anything else (``-``, ``:``,
brackets), so the id is parsed from both ends.
"""

from __future__ import annotations

from typing import NamedTuple


class CheckKey(NamedTuple):
    """Identity of a check across runs."""

    case: str
    adapter: str
    api: str
    device: str
    dtype: str


def format_check_id(case: str, adapter: str, api: str, device: str, dtype: str) -> str:
    """The check's id (also its pytest item name)."""
    return f"{case}[{adapter}.{api}-{device}-{dtype}]"


def parse_check_id(text: str) -> CheckKey | None:
    """The key of a check id, or of a pytest node id ending in one (``path::id``); None otherwise."""
    name = text.rsplit("::", 1)[-1]
    case, sep, rest = name.partition("[")
    if not sep or not case or not rest.endswith("]"):
        return None
    head, *tail = rest[:-1].rsplit("-", 2)
    if len(tail) != 2:
        return None
    adapter, dot, api = head.partition(".")
    device, dtype = tail
    if not dot or not adapter or not api or device not in ("cpu", "gpu") or not dtype:
        return None
    return CheckKey(case, adapter, api, device, dtype)
