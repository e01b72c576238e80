"""Each adapter's translation, on asymmetric probes, against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from convt_conformance.adapters import Adapter, NativeCall, RunOutput, get_adapter
from convt_conformance.adapters.registry import BUILTIN
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR, KNOWN_FILE
from convt_conformance.loading.cases import load_cases
from convt_conformance.loading.known import load_known
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.oracle.forward import conv_transpose_scatter
from tests.conftest import DATA, framework_available

PROBES = load_cases([DATA / "probes"]).cases
KNOWN = load_known(KNOWN_FILE)[0]


def _adapter(name):
    if not get_adapter(name).installed():
        pytest.skip(f"{name} is not installed")
    a = get_adapter(name)
    a.configure("strict")
    return a


def test_probes_load():
    assert len(PROBES) == 7


@pytest.mark.parametrize("name", list(BUILTIN))
@pytest.mark.parametrize("case", PROBES, ids=lambda c: c.id)
def test_adapter_matches_reference_on_probe(name, case):
    a = _adapter(name)
    for api in (api for api in a.apis if a.applies(case, api)):  # paths: their subset (tests/test_paths.py)
        rec = run_check(case, a, api, "cpu", "float64", "strict", KNOWN)
        if rec["status"] == "unsupported":
            assert rec["message"], "an unsupported check must say why"
            continue
        if rec["status"] == "xfail":  # a finding of that framework, with its reason (e.g. onnx.reference)
            assert rec["known"]["reason"]
            continue
        assert rec["status"] == "pass", f"{name}.{rec['api']}: {rec['message']}"
        assert rec["shape"] == rec["expected_shape"]
        assert rec["max_abs_err"] == 0.0  # integers: exact in float64
        call = rec["native_call"]
        assert call["function"] and call["input_layout"] and call["weight_layout"]
        if a.gpu_capable:  # where the framework actually ran it, read back from its output
            assert "cpu" in str(call["arguments"]["placed_on"]).lower()


class _AnswersFromTheCpu(Adapter):
    """Stub: asked for any device, computes with the reference and reports placement "cpu"."""

    name, apis = "stub", ("scatter",)

    def run(self, case, api, device, dtype, x, w, b):
        y = conv_transpose_scatter(x, w, b, stride=case.stride, padding=case.padding,
                                   output_padding=case.output_padding, dilation=case.dilation,
                                   groups=max(case.groups, 1)) if not case.expected_error else np.zeros((1,))
        return RunOutput(y, dtype, NativeCall("stub", "", "", "", ""), placed_on="cpu")


def test_result_from_another_device_is_an_error():
    """run_check reads back where the output lives: a "gpu" check answered from the CPU is an
    error, never a pass, and for an invalid case never `accepted-invalid` either."""
    invalid = load_cases([CASES_DIR / "invalid"]).cases[0]
    for case in (PROBES[0], invalid):
        assert run_check(case, _AnswersFromTheCpu(), "scatter", "cpu", "float64", "strict", [])["status"] in (
            "pass", "accepted-invalid")
        rec = run_check(case, _AnswersFromTheCpu(), "scatter", "gpu", "float64", "strict", [])
        assert rec["status"] == "error", rec
        assert "returned its output on 'cpu', not on the requested 'gpu'" in rec["message"]


def test_tensorflow_never_falls_back_to_the_cpu_silently():
    """TF's default soft placement would run a "/GPU:0" op on the CPU when the GPU lacks a kernel
    (or, as here, is absent), and a CPU result would be reported as a GPU one. The adapter turns
    soft placement off, so TF refuses instead."""
    a = _adapter("tensorflow")
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the refusal cannot be provoked by its absence")
    assert tf.config.get_soft_device_placement() is False
    case = PROBES[0]
    x, w, b = case.tensors("float32")
    with pytest.raises(Exception, match=r"Could not satisfy device specification .*Supported device types \[CPU\]"):
        a.run(case, "conv_transpose", "gpu", "float32", x, w, b)


SLIPS = {
    # name: (probe case, weight transform, allowed (status, failure kind) outcomes)
    "spatial-flip": ("probe-2d", lambda w: w[..., ::-1, ::-1].copy(), {("fail", "value")}),
    "h-w-swap": ("probe-2d-dilated", lambda w: np.ascontiguousarray(np.swapaxes(w, 2, 3)),
                 {("fail", "value"), ("fail", "shape"), ("error", None)}),
}


@pytest.mark.parametrize("slip", sorted(SLIPS))
@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
def test_weight_slip_cannot_pass(name, slip, monkeypatch):
    """A flipped kernel, or one with H and W swapped, fed through the adapter must not pass on
    the asymmetric probes: a convention slip in a translation cannot go unnoticed."""
    a = _adapter(name)
    case_id, transform, allowed = SLIPS[slip]
    case = next(c for c in PROBES if c.id == case_id)
    orig = a.run
    monkeypatch.setattr(a, "run", lambda case, api, device, dtype, x, w, b, **kw:
                        orig(case, api, device, dtype, x, transform(w), b, **kw))
    # the weight and bias gradients do not depend on w: their slips are planted in test_gradient_checks
    for api in (api for api in a.apis if gradient_quantity(api) in (None, "grad_input")):
        if not a.applies(case, api):
            continue
        rec = run_check(case, a, api, "cpu", "float64", "strict", [])
        if rec["status"] == "unsupported" and slip != "spatial-flip":
            continue
        if rec["status"] == "unsupported":  # refused with the right kernel too (TF's @nchw on CPU)?
            monkeypatch.setattr(a, "run", orig)
            clean = run_check(case, a, api, "cpu", "float64", "strict", [])
            monkeypatch.setattr(a, "run", lambda case, api, device, dtype, x, w, b, **kw:
                                orig(case, api, device, dtype, x, transform(w), b, **kw))
            if clean["status"] == "unsupported":
                continue  # a column that does not run this check cannot pass it
        assert (rec["status"], rec["failure_kind"]) in allowed, (api, rec["status"], rec["message"])


def test_unsupported_reasons_are_specific():
    probes = {c.id: c for c in PROBES}
    if framework_available("torch"):
        rec = run_check(probes["probe-2d-unequal-pads"], _adapter("torch"), "conv_transpose", "cpu",
                        "float32", "strict", [])
        assert rec["status"] == "unsupported" and "unequal" in rec["message"]
    if framework_available("jax"):
        rec = run_check(probes["probe-2d-groups"], _adapter("jax"), "conv_transpose", "cpu",
                        "float32", "strict", [])
        assert rec["status"] == "unsupported" and "feature_group_count" in rec["message"]
    if framework_available("tensorflow"):
        rec = run_check(probes["probe-1d"], _adapter("tensorflow"), "conv_transpose", "cpu",
                        "float32", "strict", [])
        assert rec["status"] == "unsupported" and "'VALID' or 'SAME'" in rec["message"]
        rec = run_check(probes["probe-3d-groups"], _adapter("tensorflow"), "conv_transpose", "cpu",
                        "float32", "strict", [])
        assert rec["status"] == "unsupported" and "no grouped form" in rec["message"]


def test_jax_mapping_without_consistent_padding(monkeypatch):
    """Older JAX releases lack use_consistent_padding: the adapter maps PyTorch padding to the
    transposed conv's own explicit pads instead; that mapping must pass the probes too."""
    a = _adapter("jax")
    from convt_conformance.adapters.jax import adapter as jax_adapter

    monkeypatch.setattr(jax_adapter, "has_consistent_padding", lambda: False)
    jax_adapter.JaxAdapter._compiled.cache_clear()
    try:
        for case in PROBES:
            rec = run_check(case, a, "conv_transpose", "cpu", "float64", "strict", [])
            if rec["status"] == "unsupported":
                continue
            assert rec["status"] == "pass", (case.id, rec["message"])
            assert rec["native_call"]["arguments"]["use_consistent_padding"] is False
    finally:
        jax_adapter.JaxAdapter._compiled.cache_clear()
