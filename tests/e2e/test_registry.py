"""The framework registry: built-ins, entry-point plugins, broken plugins, one check-id format."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convt_conformance.adapters import registry
from convt_conformance.library import CASES_DIR
from convt_conformance.model.check_id import format_check_id, parse_check_id
from convt_conformance.results.store import read_results
from tests.conftest import DATA, ROOT

SITE = DATA / "plugins" / "site"
BROKEN = DATA / "plugins" / "broken"


@pytest.fixture
def plugin_path(monkeypatch):
    """Put the given plugin folders on sys.path (as PYTHONPATH would) and rescan."""
    def add(*paths):
        for p in paths:
            monkeypatch.syspath_prepend(str(p))
        registry.reset()
    yield add
    registry.reset()


def test_builtins_are_registered_in_display_order():
    names = registry.adapter_names()
    assert names[:4] == ("numpy", "torch", "tensorflow", "jax")
    for n in names:
        assert registry.adapter_class(n).name == n


def test_entry_point_plugin_is_found(plugin_path):
    plugin_path(SITE)
    assert "tiny" in registry.adapter_names()
    e = registry.entries()["tiny"]
    assert e.target == "tiny_convt:TinyAdapter" and e.origin == "entry point tiny-convt 0.1"
    a = registry.get_adapter("tiny")
    assert a.installed() and not a.gpu_capable


def test_broken_plugin_is_reported_and_others_load(plugin_path):
    plugin_path(SITE, BROKEN)
    problems = registry.registry_problems()
    assert any("'broken'" in p and "no_such_module_anywhere" in p for p in problems), problems
    assert any("torch = some_vendor:TorchClone" in p and "already taken" in p for p in problems), problems
    names = registry.adapter_names()
    assert "broken" not in names and "tiny" in names and "torch" in names
    assert registry.entries()["torch"].origin == "built-in"  # a plugin cannot replace a built-in
    with pytest.raises(registry.AdapterLoadError, match="cannot be loaded"):
        registry.get_adapter("broken")


def test_unknown_framework_names_the_known_ones():
    with pytest.raises(registry.AdapterLoadError, match="unknown framework 'nope'; known: numpy"):
        registry.get_adapter("nope")


@pytest.mark.parametrize("api", ["conv_transpose2d", "bug-flip", "conv_transpose2d:grad_input",
                                 "Conv2DTranspose[torch]", "keras[jax].conv_transpose"])
def test_check_id_round_trip(api):
    cid = format_check_id("sw2d-k3-s2.x", "mx_np", api, "gpu", "bfloat16")
    key = parse_check_id("cases/x.yaml::" + cid)
    assert key == ("sw2d-k3-s2.x", "mx_np", api, "gpu", "bfloat16")


@pytest.mark.parametrize("text", ["case", "case[]", "case[numpy-cpu-float32]", "case[a.b-tpu-float32]",
                                  "[a.b-cpu-float32]"])
def test_check_id_rejects_malformed(text):
    assert parse_check_id(text) is None


def _run(tmp_path, *args, pythonpath=()):
    res = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, pythonpath)])}
    p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--results", str(res), *args],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    return p, (read_results(res) if res.exists() else None)


def test_plugin_runs_through_the_suite(tmp_path):
    """A tiny plugin installed by entry point runs as a column like any built-in framework,
    with a broken plugin beside it reported, not fatal."""
    p, data = _run(tmp_path, "--cases", str(CASES_DIR / "documents"), "--frameworks", "tiny",
                   "-n", "2", "--no-probes", pythonpath=(SITE, BROKEN))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert {r["adapter"] for r in data["results"]} == {"tiny"}
    statuses = {r["status"] for r in data["results"]}
    assert "pass" in statuses and statuses <= {"pass", "unsupported"}
    env = data["environment"]
    assert env["adapter_origins"]["tiny"].endswith("(entry point tiny-convt 0.1)")
    assert any("no_such_module_anywhere" in x for x in env["adapter_problems"])
    dev = subprocess.run([sys.executable, "-m", "convt_conformance", "devices", "--frameworks", "tiny,broken"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (ROOT, SITE, BROKEN)))})
    assert "tiny 0.1 [entry point tiny-convt 0.1: tiny_convt:TinyAdapter]: cpu" in dev.stdout, dev.stdout
    assert "broken [entry point broken-convt 0.1" in dev.stdout and "BROKEN" in dev.stdout
