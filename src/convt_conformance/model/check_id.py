"""A check, and the one format of its id: ``<case>[<adapter>.<api>-<device>-<dtype>]``.

Case ids match ``[a-z0-9][a-z0-9._-]*`` (no ``[``), adapter names ``[a-z][a-z0-9_]*`` (no ``.``),
devices and dtypes contain no ``-``; an API label may contain anything else (``-``, ``:``,
brackets), so the id is parsed from both ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Check(NamedTuple):
    """One check, its identity across runs: (case id, adapter, API label, device, dtype). A tuple,
    so it orders, hashes and compares like the plain 5-tuple of its fields."""

    case: str
    adapter: str
    api: str  # the API label (Adapter.api_label), as in the check id and the results
    device: str
    dtype: str

    @property
    def id(self) -> str:
        """The check's id (also its pytest item name)."""
        return format_check_id(self.case, self.adapter, self.api, self.device, self.dtype)

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Check:
        """The check of a results record (a CheckRecord or a record dict)."""
        return cls(record["case"], record["adapter"], record["api"], record["device"], record["dtype"])

    @classmethod
    def parse(cls, text: str) -> Check | None:
        """:func:`parse_check_id`."""
        return parse_check_id(text)


def format_check_id(case: str, adapter: str, api: str, device: str, dtype: str) -> str:
    """The check's id (also its pytest item name)."""
    return f"{case}[{adapter}.{api}-{device}-{dtype}]"


def parse_check_id(text: str) -> Check | None:
    """The check of a check id, or of a pytest node id ending in one (``path::id``); None otherwise."""
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
    return Check(case, adapter, api, device, dtype)
