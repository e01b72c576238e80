"""Keras adapter: the per-backend worker process, its round trip and its crash isolation."""

from __future__ import annotations

import importlib.util
import os
import threading

import pytest

from convt_conformance.adapters.keras.adapter import installed_backends, keras_arguments
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_file

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None or not installed_backends(),
                                reason="keras (or every Keras backend) is not installed")

SWEEP = CASES_DIR / "sweeps" / "string_padding.yaml"


@pytest.fixture(scope="module")
def cases():
    return {c.id: c for c in load_file(SWEEP).cases}


@pytest.fixture(scope="module")
def adapter(keras_adapter):
    return keras_adapter


@pytest.fixture(scope="module")
def backend():
    # the cheapest backend to start that is installed (numpy's conv_transpose is jax.lax's)
    for b in ("numpy", "jax", "torch", "tensorflow"):
        if b in installed_backends():
            return b


def test_words_reach_keras_as_words(cases):
    """A `valid` / `same` case without output_padding passes its own word (the native path)."""
    words = [c for c in cases.values() if c.padding_mode in ("valid", "same") and not any(c.mode_output_padding)]
    assert {c.padding_mode for c in words} == {"valid", "same"}
    for c in words:
        args, how = keras_arguments(c)
        assert args is not None and args[0] == c.padding_mode, (c.id, how)
        assert "passed as Keras'" in how


def test_columns_per_backend_and_labels_round_trip(adapter):
    from convt_conformance.model.check_id import format_check_id, parse_check_id

    assert {a.partition(":")[0] for a in adapter.apis} == set(installed_backends())
    for api in adapter.apis:
        label = adapter.api_label(api, 2)
        key = parse_check_id(format_check_id("c-1", "keras", label, "cpu", "float32"))
        assert key is not None and key.api == label and key.adapter == "keras"


def test_groups_unsupported_with_reason(cases, adapter):
    from dataclasses import replace

    first = next(iter(cases.values()))
    c = replace(first, spec=replace(first.spec, groups=2))
    assert "groups" in adapter.supports(c, adapter.apis[0], "cpu", "float32")


def test_worker_round_trip(cases, adapter, backend):
    case = cases["strpad1d-s2-psame"]
    for kind in ("ops", "layer", "layer_cf"):
        rec = run_check(case, adapter, f"{backend}:{kind}", "cpu", "float32", "strict", [])
        assert rec["status"] in ("pass", "unsupported"), rec["message"]
        if kind != "layer_cf" or backend != "tensorflow":  # TF CPU refuses channels_first
            assert rec["status"] == "pass", rec["message"]
            assert rec["native_call"]["arguments"]["padding"] == "same"
            assert rec["native_call"]["arguments"]["keras"]


def test_worker_killed_mid_call_is_that_checks_error_only(cases, adapter, backend):
    case = cases["strpad1d-k2-s2-pvalid-op1"]
    adapter.worker(backend)  # started before the check, so the kill lands mid-call
    real_call = adapter.call

    def call_then_die(b, msg, timeout=None):
        pid = adapter._workers[b].proc.pid
        threading.Timer(1.0, lambda: os.kill(pid, 9)).start()
        return real_call(b, {"op": "sleep", "seconds": 60}, timeout)

    adapter.call = call_then_die
    try:
        rec = run_check(case, adapter, f"{backend}:ops", "cpu", "float32", "strict", [])
    finally:
        del adapter.call
    assert rec["status"] == "error"
    assert "died with exit status -9" in rec["message"]
    after = run_check(case, adapter, f"{backend}:ops", "cpu", "float32", "strict", [])
    assert after["status"] == "pass", after["message"]


def test_hung_worker_is_killed_and_replaced(cases, adapter, backend):
    with pytest.raises(RuntimeError, match="timed out after 1 s"):
        adapter.call(backend, {"op": "sleep", "seconds": 60}, timeout=1)
    with pytest.raises(RuntimeError, match="died with exit status 7"):
        adapter.call(backend, {"op": "exit", "code": 7})
    rec = run_check(cases["strpad1d-k2-s2-pvalid-op1"], adapter, f"{backend}:layer", "cpu", "float32",
                    "strict", [])
    assert rec["status"] == "pass", rec["message"]
