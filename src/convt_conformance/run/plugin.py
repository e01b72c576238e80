"""pytest plugin that turns case files into checks: ``pytest -p convt_conformance.run.plugin cases/``.

Every YAML case file is a collector; every (case, adapter, api, device, dtype) is an item
named by its check id (:class:`convt_conformance.model.check_id.Check`) with markers per framework, device and
dtype. The run profile (``--profile``) selects checks before items are built (a light
enumeration of every case file given, ``_preselection``), the shard (``--shard K/N``) after
collection (the same pure functions in every process). Each item stores its results record in
``item.user_properties``; the controller (xdist's, or the single process) collects them
(:mod:`convt_conformance.run.collector`) and writes the results file (:mod:`convt_conformance.run.finish`). A
worker that dies is a ``crash`` of its check (xdist restarts it); known crashes run in a child
of their own (:mod:`convt_conformance.run.isolate`)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from _pytest.mark import KeywordMatcher
from _pytest.mark.expression import Expression

from convt_conformance.adapters.registry import entries
from convt_conformance.checking.check import apply_known
from convt_conformance.checking.probes import run_probe_rows
from convt_conformance.loading.cases import case_file_display, is_case_file_name, load_file, read_case_list
from convt_conformance.loading.known import load_known
from convt_conformance.loading.profiles import (
    PlannedItem,
    ProfileError,
    Shard,
    preselect,
    select,
    selection_digest,
    shard_of,
)
from convt_conformance.model.case import Case, LoadResult
from convt_conformance.model.check_id import Check
from convt_conformance.model.status import Status
from convt_conformance.run import timeline
from convt_conformance.run.affinity import pytest_xdist_make_scheduler  # noqa: F401  (the hook, found by name)
from convt_conformance.run.collector import (
    PROBES_KEY,
    PROBLEM_KEY,
    RECORD_KEY,
    SELECTION_KEY,
    UNAVAILABLE_KEY,
    ResultsCollector,
    crash_record,
    run_case_files,
)
from convt_conformance.run.grouping import (
    MEMBERS_KEY,
    Group,
    Member,
    check_nodeid,
    groups_as_json,
    groups_from_json,
    make_groups,
    parse_group_name,
)
from convt_conformance.run.isolate import check_or_isolate
from convt_conformance.run.item_protocol import (  # noqa: F401  (hooks)
    PROBE_ITEM_NAME,
    Progress,
    pytest_report_teststatus,
    pytest_runtest_protocol,
)
from convt_conformance.run.plan import load_run_profile
from convt_conformance.run.plan_file import read_plan, write_plan
from convt_conformance.run.plugin_options import pytest_addoption, selected_frameworks  # noqa: F401  (the hook, found by name)
from convt_conformance.run.state import PREFLIGHT_WAIT_S, RunState
from convt_conformance.run.watchdog import Watchdog, setup_limit

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, TracebackStyle

    from convt_conformance.adapters.base import Adapter

WORKER_ENV_KEY, WATCHDOG_DIR_KEY = "conformance_worker_environment", "conformance_watchdog_dir"
_records_key, _state_key = pytest.StashKey[ResultsCollector](), pytest.StashKey[RunState]()
_pre_key, _loaded_key = pytest.StashKey["_Plan | None"](), pytest.StashKey["dict[str, LoadResult]"]()
_plan_thread_key = pytest.StashKey[threading.Thread]()


def _sigterm(signum: int, frame: FrameType | None) -> NoReturn:  # a CI timeout: end like Ctrl-C, so what was done is written
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    timeline.mark("configure")
    for name in entries():
        config.addinivalue_line("markers", f"{name}: checks of the {name} adapter")
    config.addinivalue_line("markers", "gpu: checks that run on a GPU")
    config.addinivalue_line("markers", "cpu: checks that run on the CPU")
    for dt in ("float16", "bfloat16", "float32", "float64"):
        config.addinivalue_line("markers", f"{dt}: checks in {dt}")
    try:
        profile = load_run_profile(config.getoption("profile"), config.getoption("profiles_file") or None)
        shard = Shard.parse(config.getoption("shard")) if config.getoption("shard") else None
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    known, known_problems = load_known(config.getoption("known"))
    st = RunState(frameworks=selected_frameworks(config.getoption("frameworks")),
                  precision=config.getoption("precision"), known=known, known_problems=known_problems,
                  profile=profile, shard=shard)
    # what `conformance run`'s preflight finds (convt_conformance/run/preflight.py), written while pytest
    # starts: read where first needed (collection; the controller: at the end)
    st.preflight_path = config.getoption("preflight_json")
    config.stash[_state_key] = st
    collector = ResultsCollector(config, st)
    members: Callable[[str], list[str] | None] = functools.partial(_members, config)
    collector.expand = config.stash[MEMBERS_KEY] = members
    config.stash[_records_key] = collector
    config.pluginmanager.register(collector, "conformance-results-collector")
    if hasattr(config, "workerinput"):
        directory = config.workerinput.get(WATCHDOG_DIR_KEY)
        if directory:
            st.watchdog = Watchdog(directory, config.workerinput.get("workerid", "gw"),
                                   config.getoption("check_timeout"))
            st.watchdog.capture_stderr()
        return
    config.pluginmanager.register(Progress(config, lambda: None if collector.expected is None else len(collector.expected),
                                           lambda: (len(collector.records), collector.unexpected)),
                                  "conformance-progress")
    # controller (or -n 0): a folder for the workers' watchdog and stderr files (xdist only),
    # stale outputs replaced at once by an in-progress file, records streamed as they arrive
    st.watchdog_dir = tempfile.mkdtemp(prefix="conformance-watchdog-")
    from convt_conformance.run.finish import start_outputs

    start_outputs(config, st, collector)
    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, _sigterm)


def _state(config: pytest.Config) -> RunState:
    return config.stash[_state_key]


@contextlib.contextmanager
def _time_limit(item: pytest.Item) -> Iterator[None]:
    wd = _state(item.config).watchdog
    if wd is None:
        yield
    else:
        with wd.guard(item.nodeid):
            yield


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> CaseFile | CaseList | None:
    listed = parent.config.getoption("case_list")
    if listed and file_path == Path(listed).absolute():
        return CaseList.from_parent(parent, path=file_path)
    if is_case_file_name(file_path):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseList(pytest.File):
    """The ``--case-list`` of ``conformance run``: each file it names is a :class:`CaseFile`,
    whatever its name (pytest never parses it: ``a::b.yaml``, ``x[1].yaml`` and ``-dash.yaml`` are
    files like any other; a file that is not a case file is a problem of that file). A file
    under the rootdir keeps its relative path as node id; another one is named by its path."""

    def collect(self) -> Iterator[CaseFile]:
        for f in read_case_list(self.path):
            yield CaseFile.from_parent(self, path=f, name=_display(self.config, f))


def _display(config: pytest.Config, path: Path) -> str:
    return case_file_display(path, config.rootpath)


def _load(config: pytest.Config, path: Path) -> LoadResult:
    """The loaded case file (once per process: the preselection and the collector share it)."""
    cache = config.stash.setdefault(_loaded_key, {})
    key = str(path.resolve())
    if key not in cache:
        cache[key] = load_file(path, display=_display(config, path))
    return cache[key]


def _framework_devices(config: pytest.Config) -> dict[str, list[str]]:
    """The devices of each framework that runs (the preflight's, once it is done): those left
    out (not installed, crashed setting up, a broken plugin) are absent."""
    st = _state(config)
    st.load_preflight()
    out: dict[str, list[str]] = {}
    for name in st.frameworks:
        adapter = st.adapter(name, setup=False)  # imported at its first check (the preflight saw it set up)
        if adapter is None or name in st.unavailable:
            continue  # reported as unavailable in the environment
        devices = st.framework_devices.get(name)
        if devices is None:
            devices = st.framework_devices[name] = adapter.devices()
        out[name] = devices
    return out


def _assumed_devices(config: pytest.Config) -> dict[str, list[str]]:
    """What :func:`_framework_devices` gives on a machine without accelerators where every
    installed framework sets up: known without importing any framework."""
    st = _state(config)
    return {name: ["cpu"] for name in st.frameworks
            if (a := st.instance(name)) is not None and name not in st.unavailable and a.installed()}


def _specs(config: pytest.Config, case: Case,
           devices_of: dict[str, list[str]] | None = None) -> Iterator[tuple[str, str, str, str, str]]:
    """Every (adapter, api, label, device, dtype) collected for ``case`` (collector and
    preselection), for the frameworks and devices of ``devices_of`` (None: :func:`_framework_devices`)."""
    st = _state(config)
    devices_of = _framework_devices(config) if devices_of is None else devices_of
    tags = {t for t in config.getoption("tags").split(",") if t}
    if tags and not tags & set(case.tags):
        return
    dtypes = {t for t in config.getoption("dtypes").split(",") if t}
    want_dev = config.getoption("device")
    for name, all_devices in devices_of.items():
        adapter = st.instance(name)
        if adapter is None:
            continue
        devices = [d for d in all_devices if want_dev == "all" or d == want_dev]
        for api in adapter.apis:
            if not adapter.applies(case, api):
                continue
            label = adapter.api_label(api, case.rank)
            for device in devices:
                for dtype in case.dtypes:
                    if not dtypes or dtype in dtypes:
                        yield name, api, label, device, dtype


@dataclass
class _Selection:
    """The checks planned for ``devices_of`` (per framework, its devices), the profile's (or
    ``--only-checks``') choice among them, and the first case file (display name) of each case id."""

    devices_of: dict[str, list[str]]
    seen: dict[str, str]
    planned: list[PlannedItem]
    ids: set[str]
    selection: dict[str, Any]


def _select_checks(config: pytest.Config, files: list[tuple[str, LoadResult]],
                   devices_of: dict[str, list[str]]) -> _Selection:
    """Every check of ``files`` for the frameworks and devices of ``devices_of``, and those the
    profile (or ``--only-checks``) selects: a pure function of its arguments and the options."""
    st = _state(config)
    seen: dict[str, str] = {}
    planned: list[PlannedItem] = []
    for display, loaded in files:
        for case in loaded.cases:
            if seen.setdefault(case.id, display) != display:
                continue  # a duplicate id is a problem item, collected by its file
            for name, api, label, device, dtype in _specs(config, case, devices_of):
                cid = Check(case.id, name, label, device, dtype).id
                planned.append(PlannedItem(case, name, label, device, dtype, check_id=cid, api=api))
    ids, selection = preselect(st.profile, planned, config.getoption("only_checks"))
    return _Selection(devices_of, seen, planned, ids, selection)


@dataclass
class _Plan:
    """What the preselection chose: per case file (display name), its group items; the checks
    selected before the shard; per group name, its checks' ids (from the groups)."""

    groups: dict[str, list[Group]]
    selected: int
    members: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.members = {g.name: [m.check_id for m in g.members] for gs in self.groups.values() for g in gs}


def _matches(expr: Expression | None, names: set[str], marks: set[str]) -> bool:
    return expr is None or expr.evaluate(KeywordMatcher(names | marks))


def _marked(expr: Expression | None, marks: set[str]) -> bool:
    def matcher(name: str, /, **kwargs: object) -> bool:
        return not kwargs and name in marks

    return expr is None or expr.evaluate(matcher)


def _preselection(config: pytest.Config) -> _Plan | None:
    """The checks the profile (or ``--only-checks``), ``-k``, ``-m`` and the shard select, found
    before any item exists (unselected checks are never built), as group items
    (:mod:`convt_conformance.run.grouping`); None unless the arguments are plain case files and
    directories (then one item a check, and pytest's own deselection after collection). ``-k``
    and ``-m`` are applied here to each check (its id, its case file's path, its framework,
    device and dtype, as pytest would match an item of its own), then cleared, so that pytest
    does not apply them again to the group items. The plan is the same in every process of a run:
    xdist's workers read their controller's (:func:`_shared_plan`). While the preflight is still
    setting the frameworks up, the checks are planned for the CPU and every installed framework
    (what it finds on most machines), kept when it finds exactly that, planned again otherwise."""
    if _pre_key in config.stash:
        return config.stash[_pre_key]
    config.stash[_pre_key] = None
    given = run_case_files(config)
    if given is None:
        return None
    st = _state(config)
    timeline.mark("plan-start")
    shared = _shared_plan(config)
    if shared is not None:
        config.stash[_pre_key] = shared
        timeline.mark("plan-end", "read")
        return shared
    files = [(_display(config, p), _load(config, p)) for p in given]
    guess: _Selection | None = None
    if st.preflight_pending():  # planned meanwhile for the devices it most likely finds
        guess = _select_checks(config, files, _assumed_devices(config))
    devices_of = _framework_devices(config)  # once the preflight is done
    picked = guess if guess is not None and guess.devices_of == devices_of else \
        _select_checks(config, files, devices_of)
    seen, planned, ids = picked.seen, picked.planned, picked.ids
    st.selection = dict(picked.selection)
    keyword, markexpr = config.option.keyword.strip(), config.option.markexpr.strip()
    kexpr = Expression.compile(keyword) if keyword else None
    mexpr = Expression.compile(markexpr) if markexpr else None
    config.option.keyword = config.option.markexpr = ""  # applied here, to checks
    listed = config.getoption("case_list")
    extra = {Path(listed).name} if listed else set()
    chosen = [c for c in planned if c.check_id in ids
              and _marked(mexpr, {c.adapter_name, c.device, c.dtype})
              and _matches(kexpr, {c.check_id, seen[c.case.id], *extra}, {c.adapter_name, c.device, c.dtype})]
    if kexpr is not None or mexpr is not None:
        st.selection.update(selected_checks=len(chosen), digest=selection_digest([c.check_id for c in chosen]))
    selected = len(chosen)
    if st.shard is not None and not st.shard.problem(selected):
        shards = shard_of(st.profile, chosen, st.shard.count, [c.check_id for c in chosen])
        chosen = [c for c, k in zip(chosen, shards) if k == st.shard.index]
        st.selection["shard"] = {"index": st.shard.index, "count": st.shard.count, "checks": len(chosen)}
    per_file: dict[str, list[Member]] = {}
    for c in chosen:
        per_file.setdefault(seen[c.case.id], []).append(
            Member(c.check_id, c.case.id, c.adapter_name, c.api, c.label, c.device, c.dtype))
    groups = make_groups([(d, per_file.get(d, [])) for d, _ in files], st.profile.cost)
    plan = _Plan(groups, selected)
    config.stash[_pre_key] = plan
    timeline.mark("plan-end", "made")
    return plan


def _shared_plan(config: pytest.Config) -> _Plan | None:
    """In an xdist worker, the plan its controller computed and wrote
    (:mod:`convt_conformance.run.plan_file`), ``-k`` and ``-m`` cleared as the controller applied
    them; None elsewhere, or when the controller wrote none (the worker then computes it)."""
    directory = getattr(config, "workerinput", {}).get(WATCHDOG_DIR_KEY)
    content = read_plan(directory, PREFLIGHT_WAIT_S) if directory else None
    if content is None or not content.get("plan"):
        return None
    st, plan = _state(config), content["plan"]
    st.load_preflight()  # what the frameworks showed (devices, probes, those left out)
    st.selection = plan["selection"]
    config.option.keyword = config.option.markexpr = ""  # applied by the controller, to checks
    return _Plan(groups_from_json(plan["groups"]), int(plan["selected"]))


def _share_plan(config: pytest.Config) -> _Plan | None:
    """xdist's controller: compute the run's plan and write it for the workers
    (:mod:`convt_conformance.run.plan_file`), always, even when computing it fails (the workers
    then compute it themselves and report the problem). The controller keeps no selection of its
    own: the workers' (the same) reaches it with their records."""
    st = _state(config)
    saved = st.selection
    try:
        pre = _preselection(config)
    except BaseException as exc:
        if st.watchdog_dir:
            write_plan(st.watchdog_dir, {"failed": f"{type(exc).__name__}: {exc}"})
        raise
    content = {"plan": None if pre is None else {
        "groups": groups_as_json(pre.groups), "selected": pre.selected, "selection": st.selection}}
    st.selection = saved
    if st.watchdog_dir:
        write_plan(st.watchdog_dir, content)
    return pre


def _share_plan_in_background(config: pytest.Config) -> None:
    """:func:`_share_plan` in the controller's plan thread, whose failure the workers report."""
    with contextlib.suppress(Exception):
        _share_plan(config)


def _members(config: pytest.Config, nodeid: str) -> list[str] | None:
    """The check node ids of group item ``nodeid`` (None: not a group item), from this
    process's own preselection (the controller's is computed at its first question)."""
    if parse_group_name(nodeid) is None:
        return None
    st = _state(config)
    thread = config.stash.get(_plan_thread_key, None)
    if thread is not None:  # the controller's plan, computed while the workers started
        thread.join()
    saved = st.selection  # the workers' selection is the run's (the collector takes the first one sent)
    plan = _preselection(config)
    st.selection = saved or st.selection
    ids = plan.members.get(nodeid.rsplit("::", 1)[-1]) if plan is not None else None
    return None if ids is None else [check_nodeid(nodeid, i) for i in ids]


class CaseFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        config = self.config
        st = _state(config)
        pre = _preselection(config)
        if not config.getoption("no_probes") and not st.probe_collected:
            st.probe_collected = True  # one probe item per session, run by some worker
            yield ProbeItem.from_parent(self, name=PROBE_ITEM_NAME)
        display = _display(config, self.path)
        result = _load(config, self.path)
        for p in result.problems:
            yield ProblemItem.from_parent(self, name=f"invalid-case-file[{len(st.problems)}]", problem=str(p))
            st.problems.append(str(p))
        for case in result.cases:
            first = st.seen_ids.setdefault(case.id, display)
            if first != display:
                msg = f"{display}: case {case.id}: id: duplicate case id, first defined in {first}"
                st.problems.append(msg)
                yield ProblemItem.from_parent(self, name=f"duplicate-id[{case.id}]", problem=msg)
                continue
            if pre is not None:
                continue  # the file's group items follow
            for name, api, label, device, dtype in _specs(config, case):
                item = CaseItem.from_parent(self, name=Check(case.id, name, label, device, dtype).id, case=case,
                                            adapter_name=name, api=api, label=label, device=device, dtype=dtype)
                for m in (name, device, dtype):
                    item.add_marker(m)
                yield item
        if pre is None:
            return
        cases = {c.id: c for c in result.cases}
        for g in pre.groups.get(display, []):
            group = CheckGroupItem.from_parent(self, name=g.name, group=g, cases=cases)
            for m in (g.adapter, g.device, g.dtype):
                group.add_marker(m)
            yield group


@pytest.hookimpl(trylast=True)  # after xdist has started its workers: they start up meanwhile
def pytest_sessionstart(session: pytest.Session) -> None:
    """xdist's controller collects nothing: it computes the run's plan once for its workers
    (:func:`_share_plan`) and refuses a shard count above the checks selected
    (:meth:`Shard.problem`)."""
    config = session.config
    st = _state(config)
    if hasattr(config, "workerinput") or config.pluginmanager.get_plugin("dsession") is None:
        return  # a worker, or a single process (pytest_collection_modifyitems refuses a shard there)
    if st.shard is None:  # in a thread: xdist starts the workers once this hook returns
        thread = threading.Thread(target=_share_plan_in_background, args=(config,), name="conformance-plan", daemon=True)
        config.stash[_plan_thread_key] = thread
        thread.start()
        return
    pre = _share_plan(config)  # a shard count is refused before any worker starts
    too_many = st.shard.problem(pre.selected) if pre is not None else None
    if too_many:
        raise pytest.UsageError(too_many)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The profile (unless the preselection applied it), then the shard: pure, so alike everywhere."""
    st = _state(config)
    checks = [i for i in items if isinstance(i, CaseItem)]
    pre = config.stash.get(_pre_key, None)
    only = config.getoption("only_checks")
    if pre is not None:  # the collector built the selected checks only, sharded, as group items
        if st.shard is not None and not hasattr(config, "workerinput"):
            too_many = st.shard.problem(pre.selected)
            if too_many:
                raise pytest.UsageError(too_many)
        if st.shard is not None and st.shard.index != 1:
            items[:] = [i for i in items if not isinstance(i, ProbeItem)]  # probes run in shard 1
        return
    if only:  # `conformance run` re-running named checks (lost with a worker): exactly those
        wanted = set(json.loads(Path(only).read_text(encoding="utf-8")))
        chosen = [c for c in checks if c.nodeid in wanted]
    else:
        chosen = select(st.profile, checks)
    ids = [c.nodeid for c in chosen]
    st.selection = {"profile": st.profile.name, "collected_checks": len(checks), "selected_checks": len(chosen),
                    "digest": selection_digest(ids), "shard": None}
    keep = {id(c) for c in chosen}
    if st.shard is not None:
        too_many = st.shard.problem(len(chosen))
        if too_many and not hasattr(config, "workerinput"):  # under xdist: the controller's pytest_sessionstart
            raise pytest.UsageError(too_many)
        shards = shard_of(st.profile, chosen, st.shard.count, ids)
        keep = {id(c) for c, s in zip(chosen, shards) if s == st.shard.index}
        st.selection["shard"] = {"index": st.shard.index, "count": st.shard.count, "checks": len(keep)}
    others = [i for i in items if not isinstance(i, CaseItem)]
    if st.shard is not None and st.shard.index != 1:
        others = [i for i in others if not isinstance(i, ProbeItem)]  # probes run in shard 1
    kept = [i for i in items if (isinstance(i, CaseItem) and id(i) in keep) or i in others]
    dropped = [i for i in items if not (isinstance(i, CaseItem) and id(i) in keep) and i not in others]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


class CheckFailed(Exception):
    pass


def _set_up(item: pytest.Item, st: RunState, name: str, nodeid: str) -> Adapter:
    """The adapter ``name`` of ``item``'s checks, its framework set up in this process at its
    first check (import, ``configure``) under the watchdog (naming check ``nodeid``), bounded by
    :func:`setup_limit`. A framework that cannot run here (left out by the controller, or its
    set-up failed) skips the item with a property naming it and why: the controller leaves it
    out of the run."""
    wd = st.watchdog
    if name in st.configured:  # set up here already (the usual case: no file read a check)
        adapter = st.adapter(name)
        why = None
    else:
        adapter = None
        why = st.unavailable.get(name) or (wd.unavailable(name) if wd is not None else None)
    if why is None and adapter is None:
        guard = contextlib.nullcontext() if wd is None else wd.guard(nodeid, setting_up=name, limit_s=setup_limit(
            item.config.getoption("setup_timeout"), item.config.getoption("check_timeout")))
        with guard:
            adapter = st.adapter(name)
        why = st.unavailable.get(name)
    if adapter is None or why is not None:
        why = why or f"the adapter {name!r} cannot be loaded"
        st.unavailable.setdefault(name, why)
        item.user_properties.append((UNAVAILABLE_KEY, json.dumps({name: why})))
        pytest.skip(f"{name} cannot run: {why}")
    return adapter


class CheckGroupItem(pytest.Item):
    """The checks of one case file and one column (adapter, API label, device, dtype) as one
    item (:mod:`convt_conformance.run.grouping`): each check runs under its own watchdog guard
    and gives its own record, node id ``<case file>::<check id>`` (streamed to the worker's
    records file as it ends, for the controller should the worker die); the item fails when a
    check's result is unexpected, naming each such check."""

    single_phase = True  # no set-up or teardown phase (convt_conformance/run/item_protocol.py)

    def __init__(self, *, group: Group, cases: dict[str, Case], **kw: Any) -> None:
        super().__init__(**kw)
        self.group, self.cases = group, cases

    def runtest(self) -> None:
        st, g = _state(self.config), self.group
        started = time.time()
        adapter = _set_up(self, st, g.adapter, check_nodeid(self.nodeid, g.members[0].check_id))
        wd, timeout = st.watchdog, self.config.getoption("check_timeout")
        if wd is not None:
            wd.start_group(self.nodeid)
        bad: list[str] = []
        for m in g.members:
            case, nodeid = self.cases[m.case], check_nodeid(self.nodeid, m.check_id)
            with contextlib.nullcontext() if wd is None else wd.guard(nodeid):
                try:
                    rec = check_or_isolate(case, str(self.path), adapter, m.api, m.device, m.dtype, st.precision,
                                           st.known, timeout * 0.9)  # known crashes: a child
                except Exception:  # the harness's own failure: this check's error, the others go on
                    rec = crash_record(nodeid, traceback.format_exc(), st, timeout, case, adapter.version(),
                                       crashed=False)
                    apply_known(rec, st.known, case)
            rec.nodeid = nodeid
            raw = json.dumps(rec.as_dict(), default=str)
            self.user_properties.append((RECORD_KEY, raw))
            if wd is not None:
                wd.done(raw)
            if rec.status.unexpected:
                kind = f"/{rec.failure_kind}" if rec.failure_kind else ""
                bad.append(f"{case.file}: case {case.id}: {m.check_id}: {rec.status}{kind}: {rec.message}")
        timeline.mark("item", f"{started:.3f}", g.adapter, g.label, g.dtype, len(g.members))
        if not st.selection_sent:
            st.selection_sent = True  # the plan, once per worker
            self.user_properties.append((SELECTION_KEY, json.dumps(st.selection)))
        if bad:
            raise CheckFailed("\n".join(bad))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: TracebackStyle | None = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, CheckFailed):  # never a traceback
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        g = self.group
        return self.path, None, f"{len(g.members)} checks [{g.adapter}.{g.label} {g.device} {g.dtype}]"


class CaseItem(pytest.Item):
    single_phase = True  # no set-up or teardown phase (convt_conformance/run/item_protocol.py)

    def __init__(self, *, case: Case, adapter_name: str, api: str, label: str, device: str, dtype: str,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.case, self.adapter_name, self.api, self.label = case, adapter_name, api, label
        self.device, self.dtype = device, dtype

    @property
    def check(self) -> Check:
        """The check this item runs (its name is the check's id)."""
        return Check(self.case.id, self.adapter_name, self.label, self.device, self.dtype)

    def runtest(self) -> None:
        st = _state(self.config)
        adapter = _set_up(self, st, self.adapter_name, self.nodeid)
        with _time_limit(self):
            rec = check_or_isolate(self.case, str(self.path), adapter, self.api, self.device, self.dtype, st.precision,
                                   st.known, self.config.getoption("check_timeout") * 0.9)  # known crashes: a child
        rec.nodeid = self.nodeid
        self.user_properties.append((RECORD_KEY, json.dumps(rec.as_dict(), default=str)))
        if not st.selection_sent:
            st.selection_sent = True  # the plan, once per worker
            self.user_properties.append((SELECTION_KEY, json.dumps(st.selection)))
        status = rec.status
        if status is Status.UNSUPPORTED:
            pytest.skip(f"unsupported: {rec.message}")
        if status is Status.XFAIL:
            pytest.xfail(f"known disagreement ({rec.underlying_status}): {(rec.known or {}).get('reason')}")
        if status.unexpected:
            raise CheckFailed(f"{status}{f'/{rec.failure_kind}' if rec.failure_kind else ''}: {rec.message}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: TracebackStyle | None = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, (CheckFailed, pytest.xfail.Exception)):  # never a traceback (~0.4 s each)
            return f"{self.case.file}: case {self.case.id}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.case.id} [{self.adapter_name}.{self.api} {self.device} {self.dtype}]"


class ProbeItem(pytest.Item):
    """The convention probes (convt_conformance.checking.probes), run in a worker like any check."""

    def runtest(self) -> None:
        with _time_limit(self):
            st = _state(self.config)
            rows = run_probe_rows(st.frameworks, st.preflight)
        self.user_properties.append((PROBES_KEY, json.dumps(rows)))
        bad = [r for r in rows if not r["agrees"]]
        if bad:
            raise CheckFailed("convention probe disagrees with the adapter's declaration: "
                              + "; ".join(f"{r['api']}: discovered {r['discovered']}, declared {r['declared']}"
                                          for r in bad))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class ProblemItem(pytest.Item):
    """A case-file problem, surfaced as a failing item so it is never silent."""

    def __init__(self, *, problem: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.problem = problem

    def runtest(self) -> None:
        self.user_properties.append((PROBLEM_KEY, self.problem))
        raise CheckFailed(self.problem)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker where its watchdog and stderr files go."""
    node.workerinput[WATCHDOG_DIR_KEY] = _state(node.config).watchdog_dir


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: a worker's view of the frameworks (collection, and so the adapters'
    ``devices()`` and ``configure()``, runs in the workers only) joins the controller's."""
    st = _state(node.config)
    seen = (getattr(node, "workeroutput", None) or {}).get(WORKER_ENV_KEY)
    if seen:
        env = json.loads(seen)
        for name, devices in env["framework_devices"].items():
            st.framework_devices.setdefault(name, devices)
        for name, settings in env["configured"].items():
            st.configured.setdefault(name, settings)
        for name, why in env.get("unavailable", {}).items():
            st.unavailable.setdefault(name, why)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    st = _state(config)
    if hasattr(config, "workerinput"):  # xdist worker: the controller writes the file
        config.workeroutput[WORKER_ENV_KEY] = json.dumps(  # type: ignore[attr-defined]  # xdist's
            {"framework_devices": st.framework_devices, "configured": st.configured,
             "unavailable": st.unavailable}, default=str)
        return
    from convt_conformance.run.finish import finish_outputs

    st.load_preflight()
    try:
        finish_outputs(session, exitstatus, st, config.stash[_records_key])
    finally:
        if st.watchdog_dir:
            shutil.rmtree(st.watchdog_dir, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """An xdist worker exits here, at once: its records and ``workerfinished`` went to the
    controller at session finish, and the frameworks' own interpreter teardown (TensorFlow,
    torch, XLA) cost ~3 s a worker at the end of every run, both cores waiting."""
    if hasattr(config, "workerinput") and os.environ.get("CONFORMANCE_WORKER_TEARDOWN") != "full":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
