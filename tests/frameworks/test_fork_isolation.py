"""Each adapter that says its framework may be forked after its import (``fork_isolation``) gives,
in a child forked from its fork server, the record it gives in this process: the known crashes of
a run take that child (convt_conformance/run/isolate.py, convt_conformance/run/forkserver.py)."""

from __future__ import annotations

import pytest

from convt_conformance.adapters.registry import adapter_class, adapter_names, get_adapter
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_file
from convt_conformance.run import isolate
from convt_conformance.run.forkserver import ForkServer

DOC = CASES_DIR / "documents" / "d2l_transposed_conv.yaml"
FORKED = [n for n in adapter_names() if adapter_class(n).fork_isolation]
COMPARED = ("status", "shape", "max_abs_err", "max_ulp", "native_call")


@pytest.fixture(autouse=True)
def _fresh_servers():
    isolate.close_servers()
    yield
    isolate.close_servers()


def test_every_builtin_but_keras_forks():
    """Keras runs its checks in backend children of its own: a fork would share their pipes."""
    builtins = {"numpy", "torch", "tensorflow", "jax", "keras", "onnx", "openvino", "litert", "paddle", "mlx", "tinygrad"}
    assert builtins & set(FORKED) == builtins - {"keras"}


@pytest.mark.parametrize("name", FORKED)
def test_a_forked_child_gives_the_in_process_record(name):
    a = get_adapter(name)
    if not a.installed() or a.unavailable_reason():
        pytest.skip(f"{name} is not installed here")
    case = next(c for c in load_file(DOC).cases if c.id == "doc-basic-2x2")
    api = next(api for api in a.apis if a.applies(case, api) and ":" not in api)
    a.configure("strict")
    here = run_check(case, a, api, "cpu", "float32", "strict", [])
    label = a.api_label(api, case.rank)
    there = isolate.run_isolated(case, str(DOC), name, api, label, "cpu", "float32", "strict", [], 300, a.version())
    assert isinstance(isolate._SERVERS[name], ForkServer), "the check did not take a forked child"
    assert here.status == "pass", here.message
    for key in COMPARED:
        assert there[key] == here[key], (name, api, key)
