"""Framework-affine scheduling of the checks over xdist's workers.

xdist's ``load`` scheduling hands each worker the next chunk of the collection, so with the
collection ordered by case every worker runs every framework: each imports them all and starts
its own child for every Keras backend (~9 s for Keras on torch, ~8 s on TensorFlow, a few seconds
for the others), work the other worker has already done. Here every affinity group (the set-up
its checks share: a framework, or what its adapter's ``affinity_group`` names, such as one Keras
backend) gets a home worker (longest-processing-time-first over the profile's estimated cost of
its checks plus its set-up cost, ``setup_costs`` of the profiles); a worker takes its own
groups' checks first, in collection order, and only then the other workers' remaining ones,
from their end, so the run still ends balanced (the checks estimated at a second or more go
first). Which worker runs a check does not change its
record. Used for ``--dist load`` (what ``-n N`` means) when the plugin is loaded; ``--dist`` with
any other mode keeps xdist's own scheduler.

This subclasses xdist's ``LoadScheduling`` and uses its internals (``pending``, ``node2pending``,
``collection``, ``_send_tests``, ``check_schedule``), which no release promises to keep: the
project pins pytest-xdist exactly (pyproject.toml), and ``tests/unit/test_xdist_surface.py``
fails when the installed release is another or lacks what is used here.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from xdist.scheduler import LoadScheduling

from convt_conformance.adapters.registry import AdapterLoadError, adapter_class
from convt_conformance.model.check_id import parse_check_id
from convt_conformance.run.grouping import MEMBERS_KEY, parse_group_name
from convt_conformance.run.plan import load_run_profile

#: a group is worth setting up in a second worker only when the work its home worker has left
#: (measured, see ``AffinityScheduling``) exceeds this many times the group's set-up: past it the
#: two workers end earlier together than the home worker alone would, even with the estimates off
STEAL_MARGIN = 1.5


def affinity_group(nodeid: str) -> str:
    """The set-up a check shares with others: its adapter's ``affinity_group`` of its API label
    (by default the adapter's name; an unknown adapter: its name); "" for an item that is not a
    check (the probes, case-file problems)."""
    key = parse_check_id(nodeid) or parse_group_name(nodeid)
    if key is None:
        return ""
    try:
        return adapter_class(key.adapter).affinity_group(key.api)
    except AdapterLoadError:
        return key.adapter


def setup_seconds(setup: dict[str, float], group: str) -> float:
    """The set-up seconds of ``group`` (``setup`` by group name, ``*`` for the others; 0 for "")."""
    return setup.get(group, setup.get("*", 0.0)) if group else 0.0


def assign_homes(groups: Sequence[str], costs: Sequence[float], slots: int, setup: dict[str, float]) -> dict[str, int]:
    """Home slot (0..slots-1) per affinity group (``groups[i]``: check i's, ``costs[i]``: its
    estimated seconds): LPT over each group's summed cost plus its set-up seconds."""
    load: dict[str, float] = defaultdict(float)
    for g, c in zip(groups, costs):
        load[g] += c
    for g in load:
        load[g] += setup_seconds(setup, g)
    heap = [(0.0, k) for k in range(slots)]
    homes: dict[str, int] = {}
    for g in sorted(load, key=lambda g: (-load[g], g)):
        total, k = heapq.heappop(heap)
        homes[g] = k
        heapq.heappush(heap, (total + load[g], k))
    return homes


class AffinityScheduling(LoadScheduling):
    """xdist's load scheduling, each worker preferring its home frameworks (module docstring).
    A worker whose own checks are handed out takes another group's last checks only where that
    group is set up in it already, or where both the group's remaining cost exceeds its set-up
    cost (a few Keras checks are not worth a second child) and the work left to the group's home
    worker exceeds ``STEAL_MARGIN`` times that set-up (near the end of a run, importing
    TensorFlow a second time for its last seconds of checks ends the run later, not earlier).
    Those costs are the profile's estimates corrected by what the run has measured so far: each
    group's seconds per estimated second over its finished items, and its set-up as the excess
    of its first item in a worker (the machine's load changes both); an idle worker is offered
    work again whenever another finishes a check."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._home: list[int] | None = None  # per collection index: its group's home slot
        self._group: list[str] = []  # per collection index: its affinity group
        self._cost: list[float] = []  # per collection index: its estimated seconds
        self._setup: dict[str, float] = {}
        self._slot: dict[Any, int] = {}
        self._free: list[int] = []  # the slots of workers that died, for their replacements
        self._touched: dict[int, set[str]] = defaultdict(set)  # per slot: the groups set up there
        self._group_home: dict[str, int] = {}
        self._ran: set[tuple[int, str]] = set()  # (slot, group): a first item there finished
        self._measured: dict[str, list[float]] = {}  # group: [seconds, estimated] of its items after its first
        self._setup_seen: dict[str, float] = {}  # group: measured set-up seconds

    def _homes(self) -> list[int]:
        if self._home is None:
            assert self.collection is not None
            profile = load_run_profile(self.config.getoption("profile"), self.config.getoption("profiles_file") or None)

            stash = getattr(self.config, "stash", None)  # the run's group items (a bare config: none)
            members = stash.get(MEMBERS_KEY, None) if stash is not None else None

            def cost(nodeid: str) -> float:
                key = parse_check_id(nodeid)
                if key is not None:
                    return profile.cost(f"{key.adapter}.{key.api}")
                group = parse_group_name(nodeid)
                if group is None:
                    return 0.0
                checks = members(nodeid) if members is not None else None
                return profile.cost(f"{group.adapter}.{group.api}") * (len(checks) if checks else 1)

            for k, node in enumerate(self.nodes):
                self._slot.setdefault(node, k)
            self._setup = dict(profile.setup_costs)  # the same profiles file as the costs
            self._group = [affinity_group(n) for n in self.collection]
            self._cost = [cost(n) for n in self.collection]
            homes = assign_homes(self._group, self._cost, max(len(self._slot), 1), self._setup)
            self._home, self._group_home = [homes[g] for g in self._group], homes
            for g, k in homes.items():
                self._touched[k].add(g)
            # the checks estimated at a second or more (torch.compile, the dynamo export) first:
            # one of them last in a worker would end the run seconds after the other worker
            self.pending.sort(key=lambda i: self._cost[i] < 1.0)
        return self._home

    def add_node(self, node: Any) -> None:
        super().add_node(node)
        if self._free:
            self._slot[node] = self._free.pop()

    def remove_node(self, node: Any) -> str | None:
        if node in self._slot:
            self._free.append(self._slot.pop(node))
        return super().remove_node(node)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        if self._home is not None and duration > 0 and 0 <= item_index < len(self._group):
            self._measure(self._slot.get(node), item_index, duration)
        super().mark_test_complete(node, item_index, duration)
        for other in self.nodes:
            if other is not node and not self.node2pending[other] and self.pending:
                self.check_schedule(other)

    def _measure(self, slot: int | None, index: int, duration: float) -> None:
        """Take in a finished item's ``duration``: its group's first item in a worker measures
        the group's set-up (the excess over its estimated cost), the others its rate."""
        g = self._group[index]
        if (slot, g) in self._ran:
            m = self._measured.setdefault(g, [0.0, 0.0])
            m[0] += duration
            m[1] += self._cost[index]
        else:
            if slot is not None:
                self._ran.add((slot, g))
            self._setup_seen.setdefault(g, max(0.0, duration - self._cost[index] * self._rates()[g]))

    def _rates(self) -> defaultdict[str, float]:
        """Per group, measured seconds per estimated second of its items; for a group not
        measured yet, that of all groups' so far (1 before any)."""
        seconds = sum(m[0] for m in self._measured.values())
        estimated = sum(m[1] for m in self._measured.values())
        overall = seconds / estimated if seconds > 0 and estimated > 0 else 1.0
        rates: defaultdict[str, float] = defaultdict(lambda: overall)
        rates.update({g: sec / est for g, (sec, est) in self._measured.items() if sec > 0 and est > 0})
        return rates

    def _setup_cost(self, group: str) -> float:
        """``group``'s set-up seconds: as measured in this run, else the profile's estimate."""
        return self._setup_seen.get(group, setup_seconds(self._setup, group))

    def _cost_left(self, indices: Sequence[int], rates: dict[str, float]) -> float:
        """The cost of the items ``indices`` at the groups' measured ``rates`` (:meth:`_rates`)."""
        return sum(self._cost[i] * rates[self._group[i]] for i in indices)

    def _work_left(self, rates: dict[str, float]) -> dict[int, float]:
        """Per slot, the cost of the work left to its worker: its home items not handed out yet,
        and those handed to it and not finished."""
        assert self._home is not None
        items: dict[int, list[int]] = defaultdict(list)
        for i in self.pending:
            items[self._home[i]].append(i)
        for node, k in self._slot.items():
            items[k] += self.node2pending.get(node, [])
        return {k: self._cost_left(v, rates) for k, v in items.items()}

    def _steal(self, slot: int, num: int, taken: set[int]) -> list[int]:
        left: dict[str, list[int]] = defaultdict(list)
        for i in reversed(self.pending):
            if i not in taken:
                left[self._group[i]].append(i)
        touched = self._touched[slot]
        alive = set(self._slot.values())  # a group whose home worker died for good: always worth it

        rates = self._rates()  # once a call: the scheduler runs it at every finished check near the end
        work_left: dict[int, float] | None = None

        def worth(g: str) -> bool:
            nonlocal work_left
            if g in touched or self._group_home.get(g) not in alive:
                return True
            setup = self._setup_cost(g)
            if self._cost_left(left[g], rates) <= setup:
                return False
            work_left = self._work_left(rates) if work_left is None else work_left
            return work_left.get(self._group_home[g], 0.0) > STEAL_MARGIN * setup

        worth_it = [g for g in left if worth(g)]
        out: list[int] = []
        for g in sorted(worth_it, key=lambda g: (g not in touched, self._setup_cost(g), g)):
            out += left[g][:num - len(out)]
            touched.add(g)
            if len(out) >= num:
                break
        return out

    def _send_tests(self, node: Any, num: int) -> None:
        home = self._homes()
        slot = self._slot.get(node)
        mine = [i for i in self.pending if slot is None or home[i] == slot][:num]
        if len(mine) < num and slot is not None:  # its own work is handed out: others' last checks
            mine += self._steal(slot, num - len(mine), set(mine))
        if not mine:
            return
        chosen = set(mine)
        self.pending[:] = [i for i in self.pending if i not in chosen]
        self.node2pending[node].extend(mine)
        node.send_runtest_some(mine)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScheduling | None:
    """xdist controller: framework-affine scheduling for ``--dist load``."""
    if config.getoption("dist", "load") != "load":
        return None
    return AffinityScheduling(config, log)
