"""What the run uses of pytest-xdist is there: the installed release is the one pyproject.toml pins
exactly (convt_conformance/run/affinity.py subclasses xdist's ``LoadScheduling`` and uses its
internals), it has every attribute and method the subclass uses, and every xdist hook the plugin
implements is one xdist declares, with the arguments the plugin takes. An upgrade of xdist fails
here, loudly, rather than scheduling or attributing crashes wrongly."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import tomllib

import _pytest.hookspec
import xdist.newhooks
from xdist.dsession import DSession
from xdist.scheduler import LoadScheduling
from xdist.workermanage import WorkerController

from convt_conformance.run import affinity, collector, item_protocol, plugin
from convt_conformance.run.affinity import AffinityScheduling
from tests.conftest import ROOT


def _pinned() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = [m.group(1) for d in deps if (m := re.fullmatch(r"pytest-xdist==([\w.]+)", d.strip()))]
    assert len(pins) == 1, f"pyproject.toml: pytest-xdist must be pinned with == exactly once: {deps}"
    return pins[0]


def test_the_installed_xdist_is_the_pinned_release():
    assert importlib.metadata.version("pytest-xdist") == _pinned(), (
        "pytest-xdist differs from the release pinned in pyproject.toml: check run/affinity.py against "
        "the new LoadScheduling (and this file's list), then move the pin")


def _params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


class _Config:
    def getoption(self, name, default=None):
        return {"maxschedchunk": None}.get(name, default)

    def getvalue(self, name):
        return ["2*popen"] if name == "tx" else None


def test_load_scheduling_has_what_the_affinity_scheduler_uses():
    # the methods AffinityScheduling overrides or calls, with the arguments it passes
    expected = {"__init__": ["config", "log"], "add_node": ["node"], "remove_node": ["node"],
                "mark_test_complete": ["node", "item_index", "duration"], "check_schedule": ["node", "duration"],
                "_send_tests": ["node", "num"], "add_node_collection": ["node", "collection"], "schedule": []}
    for name, params in expected.items():
        assert _params(getattr(LoadScheduling, name)) == params, name
    own_helpers = {"_homes", "_steal", "_measure", "_rates", "_setup_cost", "_cost_left", "_work_left"}
    overridden = {n for n, v in vars(AffinityScheduling).items() if inspect.isfunction(v)} - own_helpers
    assert overridden <= set(dir(LoadScheduling)), overridden - set(dir(LoadScheduling))
    # the state it reads and changes, as LoadScheduling's constructor makes it
    s = LoadScheduling(_Config())  # type: ignore[arg-type]
    assert s.collection is None and s.pending == [] and s.node2pending == {} and s.nodes == []
    assert isinstance(s.config, _Config)
    assert _params(WorkerController.send_runtest_some) == ["indices"]
    used = set(re.findall(r"self\.(\w+)", inspect.getsource(affinity)))
    mine = {"_home", "_group", "_cost", "_setup", "_slot", "_free", "_touched", "_group_home", "_ran", "_measured",
            "_setup_seen"} | own_helpers
    assert used - mine <= set(dir(s)), used - mine - set(dir(s))
    assert {"collection", "pending", "node2pending", "nodes", "config", "check_schedule"} <= used - mine


def test_every_xdist_hook_the_plugin_implements_is_declared_by_xdist():
    pytest_hooks = {n for n in dir(_pytest.hookspec) if n.startswith("pytest_")}
    impls = {}
    for holder in (plugin, affinity, collector.ResultsCollector, item_protocol):
        for name, fn in vars(holder).items():
            if name.startswith("pytest_") and callable(fn) and name not in pytest_hooks:
                impls[name] = fn
    assert {"pytest_handlecrashitem", "pytest_xdist_make_scheduler", "pytest_configure_node",
            "pytest_testnodedown", "pytest_xdist_node_collection_finished"} <= set(impls)
    for name, fn in impls.items():
        spec = getattr(xdist.newhooks, name, None)
        assert spec is not None, f"{name}: not a hook of the installed pytest-xdist"
        assert set(_params(fn)) <= set(_params(spec)), (name, _params(fn), _params(spec))


def test_xdist_asks_the_crash_hook_before_it_logs_a_dead_workers_report():
    """The collector tells a dead worker's check by ``pytest_handlecrashitem`` (no message wording
    matched): xdist must call it, for every such report, before logging the report."""
    src = inspect.getsource(DSession.handle_crashitem)
    assert src.index("pytest_handlecrashitem(") < src.index("pytest_runtest_logreport(")
    callers = [n for n, f in inspect.getmembers(DSession, inspect.isfunction)
               if "pytest.TestReport(" in inspect.getsource(f) and 'outcome="failed"' in inspect.getsource(f)]
    assert callers == ["handle_crashitem"], callers
