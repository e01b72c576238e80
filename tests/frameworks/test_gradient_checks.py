"""Gradient checks through run_check: every framework's three gradients pass on tiny cases, a
planted wrong gradient fails, the cotangent is reproducible and recorded, the term counts follow
the derivation, grad_bias exists only with a bias, and item names with a gradient suffix parse."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings

from convt_conformance.adapters import Adapter, NativeCall, RunOutput, get_adapter
from convt_conformance.checking.check import run_check
from convt_conformance.checking.cotangent import cotangent
from convt_conformance.checking.tolerance import terms_per_gradient
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from convt_conformance.model.apis import gradient_applies, gradient_quantity
from convt_conformance.model.check_id import parse_check_id
from convt_conformance.oracle.gradients import GRADIENTS, gradient
from tests.conftest import DATA, framework_available
from tests.frameworks.test_adapter_properties import FRAMEWORKS, cases

EXAMPLES = 500 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 10

PROBES = {c.id: c for c in load_cases([DATA / "probes"]).cases}
TINY = {c.id: c for c in load_cases([DATA / "gradients"]).cases}
EDGE = {c.id: c for c in load_cases([CASES_DIR / "edge"]).cases}
INVALID = load_cases([CASES_DIR / "invalid"]).cases


def _adapter(name):
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    a = get_adapter(name)
    a.configure("strict")
    return a


def _grad_apis(a):
    return [api for api in a.apis if gradient_quantity(api)]


@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
def test_every_gradient_api_passes_on_tiny_cases(name):
    """Each gradient column of each framework API: pass (exact on integer probes in float64) or
    unsupported with a reason, and at least one pass per column."""
    a = _adapter(name)
    apis = _grad_apis(a)
    assert {gradient_quantity(api) for api in apis} == set(GRADIENTS)
    checks = [(c, "float64") for c in PROBES.values()] + [(c, dt) for c in TINY.values() for dt in c.dtypes]
    passed = set()
    for api in apis:
        for case, dtype in checks:
            if not a.applies(case, api):
                assert gradient_quantity(api) == "grad_bias" and case.bias is None
                continue
            rec = run_check(case, a, api, "cpu", dtype, "strict", [])
            if rec["status"] == "unsupported":
                assert rec["message"], (api, case.id)
                continue
            assert rec["status"] == "pass", (name, rec["api"], case.id, dtype, rec["message"])
            assert rec["shape"] == rec["expected_shape"]
            assert rec["cotangent"]["seed"] and rec["native_call"]["arguments"]["differentiated"]
            if case.id in PROBES:  # integers: exact in float64
                assert rec["max_abs_err"] == 0.0, (rec["api"], case.id)
            passed.add(api)
    assert passed == set(apis), f"never passed: {set(apis) - passed}"


class _GradientStub(Adapter):
    """Answers gradient apis with the reference gradient, optionally corrupted."""

    name, apis = "stub", ("f:grad_input", "f:grad_weight", "f:grad_bias")

    def __init__(self, corrupt=lambda q, a: a):
        self.corrupt = corrupt

    def run(self, case, api, device, dtype, x, w, b, cotangent=None):
        q = gradient_quantity(api)
        assert cotangent is not None and cotangent.shape == case.output_shape
        kw = dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding,
                  dilation=case.dilation, groups=case.groups)
        out = self.corrupt(q, gradient(q, x, w, cotangent, **kw))
        return RunOutput(out, dtype, NativeCall("stub", "", "", "", ""), placed_on="cpu")


def _flip_spatial(a):
    return a[(Ellipsis,) + (slice(None, None, -1),) * (a.ndim - 2)] if a.ndim > 2 else a[::-1]


PLANTED = {
    "doubled": lambda q, a: 2 * a,
    "spatially-flipped": lambda q, a: _flip_spatial(a),  # grad_bias: channels reversed
    # grad_weight (C_in, C_out/g, *K) read as (C_out/g, C_in, *K); grad_input's channels reversed
    "channels-swapped": lambda q, a: (np.swapaxes(a, 0, 1) if q == "grad_weight" else
                                      a[:, ::-1] if q == "grad_input" else np.roll(a, 1)),
    "off-by-0.1%": lambda q, a: a * 1.001,  # far beyond float32 rounding of these short sums
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_correct_stub_passes(dtype):
    case = TINY["grad-tiny-2d-bias"]
    for api in _GradientStub.apis:
        rec = run_check(case, _GradientStub(), api, "cpu", dtype, "strict", [])
        assert rec["status"] == "pass", (api, rec["message"])


@pytest.mark.parametrize("planted", sorted(PLANTED))
@pytest.mark.parametrize("case_id", sorted(TINY))
def test_planted_wrong_gradient_fails(planted, case_id):
    case = TINY[case_id]
    stub = _GradientStub(PLANTED[planted])
    for api in stub.apis:
        rec = run_check(case, stub, api, "cpu", "float32", "strict", [])
        assert rec["status"] == "fail", (planted, api, rec["status"], rec["message"])
        assert rec["failure_kind"] in ("value", "shape")


@pytest.mark.parametrize("planted", ["doubled", "spatially-flipped"])
@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
def test_planted_wrong_gradient_through_a_real_adapter_fails(name, planted, monkeypatch):
    """A framework's true gradients, corrupted after its adapter returns: the check must fail."""
    a = _adapter(name)
    case = TINY["grad-tiny-2d-bias"]
    orig = a.run

    def corrupted(case, api, *args, **kw):
        out = orig(case, api, *args, **kw)
        arr = PLANTED[planted](gradient_quantity(api), out.array)
        return RunOutput(arr, out.native_dtype, out.native_call, out.placed_on)

    monkeypatch.setattr(a, "run", corrupted)
    failed = []
    for api in _grad_apis(a):
        rec = run_check(case, a, api, "cpu", "float64", "strict", [])
        assert rec["status"] in ("fail", "unsupported"), (api, rec["message"])
        assert rec["status"] == "fail" or "groups" in rec["message"]
        failed += [api] if rec["status"] == "fail" else []
    assert {gradient_quantity(api) for api in failed} == set(GRADIENTS), failed


def test_cotangent_recipe():
    """Integers for integer-valued cases, uniform[-1, 1] otherwise; seeded by the case id (stable);
    rounded to the dtype; recorded in the check record."""
    ints, uni = TINY["grad-tiny-2d-groups-integers"], TINY["grad-tiny-2d-bias"]
    g1, r1 = cotangent(uni, "bfloat16")
    g2, _ = cotangent(uni, "bfloat16")
    np.testing.assert_array_equal(g1, g2)
    assert r1["distribution"] == "uniform" and g1.shape == uni.output_shape
    assert np.abs(g1).max() <= 1.0 and not np.array_equal(g1, np.round(g1))
    g64, _ = cotangent(uni, "float64")
    assert not np.array_equal(g64, g1)  # rounding to bfloat16 changed it
    gi, ri = cotangent(ints, "float16")
    assert ri["distribution"] == "integers" and np.array_equal(gi, np.round(gi)) and np.abs(gi).max() <= 3
    assert cotangent(PROBES["probe-2d"], "float32")[1]["seed"] != cotangent(PROBES["probe-1d"], "float32")[1]["seed"]
    rec = run_check(uni, _GradientStub(), "f:grad_weight", "cpu", "float32", "strict", [])
    assert rec["cotangent"]["seed"] == r1["seed"] and rec["cotangent"]["rounded_to"] == "float32"


def test_terms_per_gradient():
    """grad_input: C_out/g * prod(K); grad_weight: N * prod(in); grad_bias: N * prod(out)."""
    c = TINY["grad-tiny-2d-groups-integers"]  # N 1, C_in 4, C_out 2, groups 2, in 3x2, K 2x3, out 4x5
    n, cin, *sp = c.input.shape
    k = c.weight.shape[2:]
    out = c.output_shape[2:]
    assert terms_per_gradient(c, "grad_input") == (c.out_channels // c.groups) * int(np.prod(k)) == 6
    assert terms_per_gradient(c, "grad_weight") == n * int(np.prod(sp)) == 6
    assert terms_per_gradient(c, "grad_bias") == n * int(np.prod(out)) == 20
    rec = run_check(c, _GradientStub(), "f:grad_bias", "cpu", "float32", "strict", [])
    assert rec["tolerance"]["n_terms"] == 20


def test_gradient_checks_only_where_they_mean_something():
    assert not any(gradient_applies(c, "f:grad_input") for c in INVALID)
    assert gradient_applies(PROBES["probe-2d"], "f:grad_weight")
    assert not gradient_applies(PROBES["probe-2d"], "f:grad_bias")  # no bias
    assert gradient_applies(PROBES["probe-1d"], "f:grad_bias")
    rec = run_check(INVALID[0], _GradientStub(), "f:grad_input", "cpu", "float32", "strict", [])
    assert rec["status"] == "unsupported" and "no gradient" in rec["message"]


def test_exact_gradient_beyond_the_dtype_range_is_expected_as_inf():
    """edge-cancellation-half's weight gradient is -90000 exactly: float16's correctly rounded
    value is -Inf, which a framework must return (torch does)."""
    a = _adapter("torch")
    rec = run_check(EDGE["edge-cancellation-half"], a, "conv_transpose:grad_weight", "cpu", "float16", "strict", [])
    assert rec["status"] == "pass", rec["message"]


def test_item_names_with_a_gradient_suffix_parse():
    m = parse_check_id("cases/x.yaml::doc-basic-2x2[torch.conv_transpose2d:grad_input-cpu-float32]")
    assert m and m.api == "conv_transpose2d:grad_input" and m.dtype == "float32"
    m = parse_check_id("cases/x.yaml::sw2d-k3-s2[jax.conv_general_dilated:grad_bias-gpu-bfloat16]")
    assert m and m.adapter == "jax" and m.device == "gpu"


@pytest.mark.skipif(not FRAMEWORKS, reason="no framework installed")
def test_every_gradient_agrees_with_reference():
    """On random valid configurations (tests/test_adapter_properties.py's strategy): every gradient
    column of every installed framework passes in float32, or says why it cannot be checked; and
    every framework passes some."""
    adapters = {name: get_adapter(name) for name in FRAMEWORKS}
    for a in adapters.values():
        a.configure("strict")
    passed: Counter = Counter()

    @settings(max_examples=EXAMPLES, derandomize=os.environ.get("HYPOTHESIS_PROFILE") != "thorough", deadline=None)
    @given(cases())
    def agrees(case):
        for name, a in adapters.items():
            for api in _grad_apis(a):
                rec = run_check(case, a, api, "cpu", "float32", "strict", [])
                if rec["status"] == "unsupported":
                    assert rec["message"]
                    continue
                assert rec["status"] == "pass", (name, rec["api"], case.params(), rec["message"])
                passed[name] += 1

    agrees()
    assert set(passed) == set(FRAMEWORKS), f"a framework passed no random case: {passed}"
