"""Each adapter's translation, on asymmetric probes, against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from convt_conformance.adapters import Adapter, NativeCall, RunOutput, adapter_names
from convt_conformance.adapters.keras.adapter import BACKENDS as KERAS_BACKENDS
from convt_conformance.adapters.registry import BUILTIN
from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR, KNOWN_FILE
from convt_conformance.loading.cases import load_cases
from convt_conformance.loading.known import load_known
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.oracle.forward import conv_transpose_scatter
from tests.conftest import DATA

PROBES = load_cases([DATA / "probes"]).cases
PROBE_BY_ID = {c.id: c for c in PROBES}
PATH_CASES = {c.id: c for c in load_cases([CASES_DIR / "paths"]).cases}
KNOWN = load_known(KNOWN_FILE)[0]


def test_probes_load():
    assert len(PROBES) == 7


# (framework, probe) where every column refuses the probe (unsupported with its reason): elsewhere
# at least one column must run it (pass, or a known disagreement), so an adapter that starts
# refusing everything cannot pass this test
REFUSES_EVERY_COLUMN = {
    ("torch", "probe-2d-unequal-pads"): "torch's padding is one int per axis, cut from both ends",
    ("tensorflow", "probe-1d"): "output_padding with explicit pads: TF takes 'VALID'/'SAME' or explicit pads",
    ("tensorflow", "probe-2d-groups"): "no grouped transposed convolution on CPU",
    ("tensorflow", "probe-3d-groups"): "no grouped form",
    **{("keras", p): "Keras takes 'valid'/'same' (+ output_padding) only, no groups"
       for p in ("probe-1d", "probe-2d", "probe-2d-dilated", "probe-2d-groups", "probe-2d-unequal-pads",
                 "probe-3d-groups")},
    **{("openvino", p): "float64: the CPU plugin takes no f64 inference precision" for p in PROBE_BY_ID},
    **{("litert", p): "float64: the converter refuses a float64 model (no TFLite op for it)" for p in PROBE_BY_ID},
    ("mlx", "probe-2d-groups"): "float64: MLX's CPU convolution refuses float64 with groups > 1, and ConvTranspose2d "
                                "has no groups",
    ("mlx", "probe-3d-groups"): "MLX has no grouped 3-D convolution, and ConvTranspose3d has no groups",
}


@pytest.mark.parametrize("name", list(BUILTIN))
@pytest.mark.parametrize("case", PROBES, ids=lambda c: c.id)
def test_adapter_matches_reference_on_probe(name, case, shared_adapter):
    a = shared_adapter(name)
    ran = 0
    for api in (api for api in a.apis if a.applies(case, api)):
        rec = run_check(case, a, api, "cpu", "float64", "strict", KNOWN)
        if rec["status"] == "unsupported":
            assert rec["message"], "an unsupported check must say why"
            continue
        ran += 1
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
    assert ran or (name, case.id) in REFUSES_EVERY_COLUMN, f"every {name} column refused {case.id}"


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


def test_tensorflow_never_falls_back_to_the_cpu_silently(shared_adapter):
    """TF's default soft placement would run a "/GPU:0" op on the CPU when the GPU lacks a kernel
    (or, as here, is absent), and a CPU result would be reported as a GPU one. The adapter turns
    soft placement off, so TF refuses instead."""
    a = shared_adapter("tensorflow")
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the refusal cannot be provoked by its absence")
    assert tf.config.get_soft_device_placement() is False
    case = PROBES[0]
    x, w, b = case.tensors("float32")
    with pytest.raises(Exception, match=r"Could not satisfy device specification .*Supported device types \[CPU\]"):
        a.run(case, "conv_transpose", "gpu", "float32", x, w, b)


SLIPS = {
    # name: (probes, tried in order until the column runs one; weight transform; allowed (status, kind))
    "spatial-flip": (("probe-2d", "probe-3d"), lambda w: w[..., ::-1, ::-1].copy(), {("fail", "value")}),
    "h-w-swap": (("probe-2d-dilated", "probe-3d"), lambda w: np.ascontiguousarray(np.swapaxes(w, 2, 3)),
                 {("fail", "value"), ("fail", "shape"), ("error", None)}),
}


def _slip_targets() -> list:
    """Every registered framework; Keras once per backend it can run on (each its own columns)."""
    out = []
    for name in adapter_names():
        if name == "keras":
            out += [pytest.param(name, b, id=f"keras[{b}]") for b in KERAS_BACKENDS]
        else:
            out.append(pytest.param(name, None, id=name))
    return out


@pytest.mark.parametrize("slip", sorted(SLIPS))
@pytest.mark.parametrize("name, backend", _slip_targets())
def test_weight_slip_cannot_pass(name, backend, slip, shared_adapter, monkeypatch):
    """A flipped kernel, or one with H and W swapped, fed through the adapter must not pass on
    the asymmetric probes: a convention slip in a translation cannot go unnoticed. Every column
    is checked on the first probe it passes with the right kernel (float32: integer data is exact
    there, and every column has it), and at least one column must have caught the slip."""
    a = shared_adapter(name)
    if backend is not None and backend not in a.backends:
        pytest.skip(f"Keras' {backend} backend is not installed")
    case_ids, transform, allowed = SLIPS[slip]
    clean_run = a.run

    def slipped(case, api, device, dtype, x, w, b, **kw):
        return clean_run(case, api, device, dtype, x, transform(w), b, **kw)

    # the weight and bias gradients do not depend on w: their slips are planted in test_gradient_checks
    columns = [api for api in a.apis if gradient_quantity(api) in (None, "grad_input")
               and (backend is None or api.startswith(f"{backend}:"))]
    assert columns
    caught, refused = [], []
    for api in columns:
        for case in (PROBE_BY_ID[c] for c in case_ids):
            if not a.applies(case, api):
                continue
            if run_check(case, a, api, "cpu", "float32", "strict", [])["status"] != "pass":
                continue  # this column does not run this probe as it is (refused, or a finding): the next one
            monkeypatch.setattr(a, "run", slipped)
            rec = run_check(case, a, api, "cpu", "float32", "strict", [])
            monkeypatch.setattr(a, "run", clean_run)
            if rec["status"] == "unsupported" and slip == "h-w-swap":
                refused.append((api, case.id))  # the swapped kernel's geometry is one the API cannot take
                break
            assert (rec["status"], rec["failure_kind"]) in allowed, (api, case.id, rec["status"], rec["message"])
            caught.append((api, case.id))
            break
    assert caught, f"{name}: no column passes {' or '.join(case_ids)}, so no slip could be caught ({refused=})"


# (framework, case, api, words of the adapter's own reason); "{backend}": the first installed Keras backend
REFUSALS = [
    ("numpy", "paths-2d-nan-input", "recipe", "equals the definition only for finite values"),
    ("numpy", "paths-2d-nan-input", "matrix", "equals the definition only for finite values"),
    ("torch", "probe-2d-unequal-pads", "conv_transpose", "unequal"),
    ("jax", "probe-2d-groups", "conv_transpose", "feature_group_count"),
    ("tensorflow", "probe-1d", "conv_transpose", "'VALID' or 'SAME'"),
    ("tensorflow", "probe-3d-groups", "conv_transpose", "no grouped form"),
    ("keras", "probe-2d-groups", "{backend}:ops", "no groups argument"),
    ("keras", "probe-2d-unequal-pads", "{backend}:layer", "Keras takes only padding 'valid'/'same'"),
    ("onnx", "probe-2d-unequal-pads", "torch-export.ConvTranspose{n}d", "unequal (begin, end) padding pairs"),
    ("openvino", "probe-2d-groups", "ConvolutionBackpropData", "ConvolutionBackpropData has no groups"),
    ("litert", "probe-2d-groups", "conv_transpose", "no grouped transposed convolution"),
    ("paddle", "probe-2d-unequal-pads", "conv_transpose:padding_algorithm", "are no padding word"),
    ("mlx", "probe-2d-groups", "ConvTranspose", "has no groups argument"),
    ("tinygrad", "probe-2d-unequal-pads", "conv_transpose2d", "unequal (begin, end) padding pairs"),
]


@pytest.mark.parametrize("name, case_id, api, words", REFUSALS, ids=[f"{r[0]}-{r[2]}-{r[1]}" for r in REFUSALS])
def test_unsupported_reasons_are_specific(name, case_id, api, words, shared_adapter):
    """What a native API cannot express is `unsupported` with the adapter's specific reason."""
    a = shared_adapter(name)
    if "{backend}" in api:
        api = api.format(backend=a.backends[0])
    case = {**PROBE_BY_ID, **PATH_CASES}[case_id]
    rec = run_check(case, a, api, "cpu", "float32", "strict", [])
    assert rec["status"] == "unsupported", (rec["status"], rec["message"])
    assert words in rec["message"], rec["message"]


def test_every_builtin_framework_has_a_refusal_checked():
    assert set(BUILTIN) <= {r[0] for r in REFUSALS}


def test_jax_mapping_without_consistent_padding(monkeypatch, shared_adapter):
    """Older JAX releases lack use_consistent_padding: the adapter maps PyTorch padding to the
    transposed conv's own explicit pads instead; that mapping must pass the probes too."""
    a = shared_adapter("jax")
    from convt_conformance.adapters.jax import adapter as jax_adapter

    monkeypatch.setattr(jax_adapter, "has_consistent_padding", lambda: False)
    jax_adapter.JaxAdapter._compiled.cache_clear()
    passed = []
    try:
        for case in PROBES:
            rec = run_check(case, a, "conv_transpose", "cpu", "float64", "strict", [])
            if rec["status"] == "unsupported":  # groups: lax.conv_transpose has no feature_group_count
                assert "feature_group_count" in rec["message"], (case.id, rec["message"])
                continue
            assert rec["status"] == "pass", (case.id, rec["message"])
            assert rec["native_call"]["arguments"]["use_consistent_padding"] is False
            passed.append(case.id)
    finally:
        jax_adapter.JaxAdapter._compiled.cache_clear()
    assert len(passed) >= len(PROBES) - 2, passed  # all but the two grouped probes
