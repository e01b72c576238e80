"""Keras gradient columns (``<backend>:<kind>:grad_*``): each autodiff backend's gradients of
ops.conv_transpose and the layers (both data formats) against the NumPy reference, the numpy
backend unsupported with its reason, one shared backward pass per (case, dtype, column), a
per-gradient retry when that pass fails, and layout mistakes caught."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from convt_conformance.adapters.base import FrameworkError, RunOutput
from convt_conformance.adapters.keras.adapter import NUMPY_NO_AUTODIFF, installed_backends
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR, KNOWN_FILE
from convt_conformance.loading.cases import load_cases
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.oracle.gradients import GRADIENTS

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None or not installed_backends(),
                                reason="keras (or every Keras backend) is not installed")

AUTODIFF = [b for b in ("torch", "tensorflow", "jax") if b in installed_backends()]
KINDS = ("ops", "layer", "layer_cf")
# bias + non-square kernel + unequal strides (rank 2); output_padding (rank 1); rank 3; C_in 20 != C_out 10
CASE_IDS = ("strpad2d-k4x1-s3x2-psame", "strpad1d-k2-s2-pvalid-op1", "strpad3d-k2-psame", "doc-channels-roundtrip-shape")


@pytest.fixture(scope="module")
def cases():
    loaded = load_cases([CASES_DIR / "sweeps" / "string_padding.yaml", CASES_DIR / "documents"])
    return {c.id: c for c in loaded.cases}


@pytest.fixture(scope="module")
def adapter(keras_adapter):
    return keras_adapter


def test_three_gradient_columns_per_forward_column(adapter):
    forward = [api for api in adapter.apis if not gradient_quantity(api)]
    grads = [api for api in adapter.apis if gradient_quantity(api)]
    assert len(grads) == 3 * len(forward)
    for api in forward:
        for q in GRADIENTS:
            assert f"{api}:{q}" in grads
    assert adapter.api_label("torch:layer_cf:grad_weight", 2) == "[torch]Conv2DTranspose:channels_first:grad_weight"
    assert adapter.api_label("jax:ops:grad_bias", 1) == "[jax]ops.conv_transpose:grad_bias"


@pytest.mark.skipif("numpy" not in installed_backends(), reason="Keras' numpy backend needs jax")
def test_numpy_backend_has_no_autodiff_unsupported_with_reason(cases, adapter, monkeypatch):
    case = cases["strpad2d-k4x1-s3x2-psame"]
    asked = []
    real = adapter.worker
    monkeypatch.setattr(adapter, "worker", lambda backend: asked.append(backend) or real(backend))
    for kind in KINDS:
        for q in GRADIENTS:
            rec = run_check(case, adapter, f"numpy:{kind}:{q}", "cpu", "float32", "strict", [])
            assert rec["status"] == "unsupported" and rec["message"] == NUMPY_NO_AUTODIFF
            assert "no automatic differentiation" in rec["message"]
    assert asked == []  # decided without asking any child (the numpy one may run from other tests)


@pytest.mark.parametrize("backend", AUTODIFF)
def test_gradients_match_the_reference(cases, adapter, backend):
    """Every gradient of every kind on a few cases: pass (TF's own CPU kernels refuse channels_first:
    unsupported with TF's message), native_call naming the backend's autodiff and the differentiated variable."""
    method = {"torch": "torch.autograd.grad", "tensorflow": "tf.GradientTape", "jax": "jax.vjp"}[backend]
    passed = set()
    for cid in CASE_IDS:
        case = cases[cid]
        for dtype in [d for d in ("float32", "float64") if d in case.dtypes]:
            for kind in KINDS:
                for q in GRADIENTS:
                    api = f"{backend}:{kind}:{q}"
                    if not adapter.applies(case, api):
                        assert q == "grad_bias" and case.bias is None
                        continue
                    rec = run_check(case, adapter, api, "cpu", dtype, "strict", [])
                    # TF's own CPU kernels refuse NCHW; its oneDNN custom ops (on by default on
                    # CPUs with AVX512_VNNI/BF16 or AMX) run it, in float32 (oneDNN has no float64)
                    if (backend == "tensorflow" and kind == "layer_cf"
                            and ("tensorflow.onednn_custom_ops" not in adapter.facts() or dtype == "float64")):
                        assert rec["status"] == "unsupported" and "only supports N" in rec["message"], rec["message"]
                        continue
                    assert rec["status"] == "pass", (rec["api"], cid, dtype, rec["message"])
                    assert rec["shape"] == rec["expected_shape"]
                    call = rec["native_call"]
                    assert method in call["function"] and f"KERAS_BACKEND={backend}" in call["function"]
                    assert method.split("(")[0] in call["arguments"]["method"]
                    diff = call["arguments"]["differentiated"]
                    if kind != "ops" and q != "grad_input":
                        assert diff.startswith(f"layer.{q[5:].replace('weight', 'kernel')} variable"), diff
                    passed.add((kind, q))
    assert {q for _, q in passed} == set(GRADIENTS)


@pytest.mark.parametrize("backend", AUTODIFF)
def test_one_backward_pass_serves_the_three_gradients(cases, adapter, backend):
    case = cases["strpad2d-k4x1-s3x2-psame"]
    asked = []
    real = adapter.call

    def spy(b, msg, timeout=None):
        asked.append(list(msg.get("wrt", [])))
        return real(b, msg, timeout)

    adapter.call = spy
    try:
        for q in GRADIENTS:
            rec = run_check(case, adapter, f"{backend}:ops:{q}", "cpu", "float32", "strict", [])
            assert rec["status"] == "pass", rec["message"]
            assert rec["native_call"]["arguments"]["one_backward_pass_for"] == list(GRADIENTS)
    finally:
        del adapter.call
    assert asked == [list(GRADIENTS)]


def test_failed_shared_pass_is_retried_per_gradient(cases, adapter):
    """When the shared pass fails (e.g. only the kernel gradient does, as torch's on C_in = 1), each
    check asks for its own gradient: the others still pass, the failing one carries its message."""
    backend = AUTODIFF[0] if AUTODIFF else pytest.skip("no Keras backend with autodiff")
    case = cases["strpad1d-k2-s2-pvalid-op1"]
    real = adapter.call

    def weight_fails(b, msg, timeout=None):
        if "grad_weight" in msg.get("wrt", []):
            raise FrameworkError("RuntimeError: planted kernel-gradient failure")
        return real(b, msg, timeout)

    adapter.call = weight_fails
    try:
        got = {q: run_check(case, adapter, f"{backend}:layer:{q}", "cpu", "float32", "strict", [])
               for q in ("grad_input", "grad_weight")}
    finally:
        del adapter.call
    assert got["grad_input"]["status"] == "pass", got["grad_input"]["message"]
    assert got["grad_input"]["native_call"]["arguments"]["one_backward_pass_for"] == ["grad_input"]
    assert got["grad_weight"]["status"] == "error"
    assert "planted kernel-gradient failure" in got["grad_weight"]["message"]


@pytest.mark.parametrize("planted", ["kernel-layout", "channels-last-input"])
def test_layout_mistakes_fail(cases, adapter, monkeypatch, planted):
    """The native gradients read back in the wrong layout must fail: the kernel gradient taken as
    (C_out, C_in, *K) by a naive reshape, the input gradient's channels-last axes not moved."""
    backend = AUTODIFF[0] if AUTODIFF else pytest.skip("no Keras backend with autodiff")
    case = cases["doc-channels-roundtrip-shape"]  # C_in 20, C_out 10, 5x5 kernel
    orig = adapter._run_gradient
    q = "grad_weight" if planted == "kernel-layout" else "grad_input"

    def wrong(case, api, *args):
        out = orig(case, api, *args)
        a = out.array
        a = a.reshape(a.shape[1], a.shape[0], *a.shape[2:]).swapaxes(0, 1) if q == "grad_weight" \
            else np.moveaxis(a, 1, -1).reshape(a.shape)
        return RunOutput(a, out.native_dtype, out.native_call, out.placed_on)

    monkeypatch.setattr(adapter, "_run_gradient", wrong)
    rec = run_check(case, adapter, f"{backend}:layer:{q}", "cpu", "float32", "strict", [])
    assert rec["status"] == "fail", rec["message"]


def test_forward_known_disagreements_do_not_cover_the_gradient_columns(adapter):
    """Keras entries written for the forward columns (api patterns without ``:grad_``) must not
    reach a gradient column (a forward finding is no evidence about a backward pass), and must
    still cover the forward columns of their backend."""
    from convt_conformance.loading.known import BASE_APIS, load_known

    entries, problems = load_known(KNOWN_FILE)
    assert not problems
    labels = {adapter.api_label(api, r) for api in adapter.apis for r in (1, 2, 3)}
    grads = {lab for lab in labels if ":grad_" in lab}
    forward = labels - grads
    keras_forward = [e for e in entries if e.adapter == "keras" and ":grad_" not in e.api]
    assert keras_forward, "no Keras entry for a forward column: nothing to check"
    for e in keras_forward:
        assert not [g for g in grads if e.matches_api(g)], e.api
        if e.api != BASE_APIS:
            assert [f for f in forward if e.matches_api(f)], e.api
