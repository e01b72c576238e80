"""Many checks per pytest item: the checks of one case file and one column (adapter, API label,
device, dtype), in case order, cut into chunks of about :data:`CHUNK_SECONDS` of estimated work.

A pytest item costs the harness about as much as a cheap framework's native call (its report
built, serialised by xdist, unserialised and hooked in the controller); a group item pays that
once for its checks. Each check keeps everything it had as an item of its own: its record and
node id (``<case file node id>::<check id>``, the id an item of its own would have had), its
status and known-disagreement matching, the watchdog armed around it alone, its crash named
exactly, and ``-k`` selecting it alone (the plugin applies ``-k`` to check ids before grouping).
Markers (framework, device, dtype) are the group's and the same for all its checks, so ``-m``
selects whole groups as it selected their checks.

A group's item name is ``@<n>:<adapter>.<api>-<device>-<dtype>``: ``n`` numbers the groups of
the whole run in the order of the run's case files (every process of a run computes the same
numbering from the same selection, so a group name is unique in the run and names the same
checks everywhere). It never parses as a check id (:func:`convt_conformance.model.check_id.parse_check_id`
wants ``<case>[...]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest

#: estimated seconds of work a group item holds at most (one check more than that if a single
#: check costs more): small enough that the last items of a run end together on every worker
CHUNK_SECONDS = 2.0
#: checks a group item holds at most, whatever their estimate (a bound on a report's size)
CHUNK_CHECKS = 250

GROUP_PREFIX = "@"

#: the config's stash: the check node ids of a group item's node id (None: not a group item)
MEMBERS_KEY = pytest.StashKey[Callable[[str], "list[str] | None"]]()


class Member(NamedTuple):
    """One selected check of a group: its id, the case id, and the column it runs."""

    check_id: str
    case: str
    adapter: str
    api: str  # the adapter's API name (the item calls it)
    label: str  # the API label (in the check id)
    device: str
    dtype: str


@dataclass
class Group:
    """The checks one group item runs, in case order."""

    name: str
    adapter: str
    label: str
    device: str
    dtype: str
    members: list[Member] = field(default_factory=list)


class GroupKey(NamedTuple):
    """What a group item's name says: its number in the run and its column."""

    number: int
    adapter: str
    api: str  # the API label
    device: str
    dtype: str


def group_name(number: int, adapter: str, label: str, device: str, dtype: str) -> str:
    """The item name of the run's ``number``-th group (module docstring)."""
    return f"{GROUP_PREFIX}{number}:{adapter}.{label}-{device}-{dtype}"


def parse_group_name(text: str) -> GroupKey | None:
    """The group of an item name or a node id ending in one (``path::@n:...``); None otherwise."""
    name = text.rsplit("::", 1)[-1]
    if not name.startswith(GROUP_PREFIX):
        return None
    number, colon, rest = name[len(GROUP_PREFIX):].partition(":")
    head, *tail = rest.rsplit("-", 2)
    if not colon or not number.isdigit() or len(tail) != 2:
        return None
    adapter, dot, api = head.partition(".")
    if not dot or not adapter or not api:
        return None
    return GroupKey(int(number), adapter, api, tail[0], tail[1])


def make_groups(files: Sequence[tuple[str, Sequence[Member]]], cost: Callable[[str], float],
                start: int = 1) -> dict[str, list[Group]]:
    """Per case file (display name, in the order given), its groups: its members by column, in
    member order, cut at :data:`CHUNK_SECONDS` of ``cost(column)`` or :data:`CHUNK_CHECKS`
    checks; groups numbered from ``start`` across all files, in order of each group's first
    member. ``cost`` takes ``adapter.label``, the column as the profiles name it."""
    out: dict[str, list[Group]] = {}
    number = start
    for display, members in files:
        open_: dict[tuple[str, str, str, str], tuple[Group, float]] = {}
        groups: list[Group] = []
        for m in members:
            key = (m.adapter, m.label, m.device, m.dtype)
            seconds = cost(f"{m.adapter}.{m.label}")
            current = open_.get(key)
            if current is not None:
                g, spent = current
                if spent + seconds <= CHUNK_SECONDS and len(g.members) < CHUNK_CHECKS:
                    g.members.append(m)
                    open_[key] = (g, spent + seconds)
                    continue
            g = Group(group_name(number, *key), *key, members=[m])
            number += 1
            groups.append(g)
            open_[key] = (g, seconds)
        out.setdefault(display, []).extend(groups)
    return out


def check_nodeid(group_nodeid: str, check_id: str) -> str:
    """The node id of a check of the group item ``group_nodeid``: its case file's node id, then
    the check id (what an item of its own would be called)."""
    return group_nodeid.rsplit("::", 1)[0] + "::" + check_id


def groups_as_json(groups: dict[str, list[Group]]) -> dict[str, list[list[Any]]]:
    """``groups`` (per case file, as :func:`make_groups` gives them) as JSON-ready lists."""
    return {display: [[g.name, g.adapter, g.label, g.device, g.dtype, [list(m) for m in g.members]] for g in gs]
            for display, gs in groups.items()}


def groups_from_json(data: dict[str, list[list[Any]]]) -> dict[str, list[Group]]:
    """The groups :func:`groups_as_json` wrote."""
    return {display: [Group(str(name), str(adapter), str(label), str(device), str(dtype),
                            [Member(*(str(v) for v in m)) for m in members])
                      for name, adapter, label, device, dtype, members in gs]
            for display, gs in data.items()}
