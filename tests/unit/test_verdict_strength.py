"""Tests that can fail for the right reasons: planted errors just outside what a correct
framework can produce must fail, so a tolerance loosened by 2x would be caught here.

Each stub adapter computes with the reference and plants one error; nothing here hard-codes an
expected value: the planted error is derived from the dtype's unit roundoff and the case's term
count (the standard dot-product bound), independently of convt_conformance.checking.tolerance's code."""

from __future__ import annotations

import numpy as np
import pytest

from convt_conformance.adapters.base import Adapter, NativeCall, RunOutput
from convt_conformance.checking.check import reference_and_magnitude, run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from convt_conformance.model.dtypes import numpy_dtype, round_to, unit_roundoff
from convt_conformance.oracle.forward import conv_transpose_scatter

CASES = {c.id: c for c in load_cases([CASES_DIR / "edge"]).cases}
LONG = CASES["edge-big-channels"]  # 64 channels x 5x5 kernel = 1600 terms per output


def _reference(case, x, w, b):
    return conv_transpose_scatter(x, w, b, stride=case.stride, padding=case.padding,
                                  output_padding=case.output_padding, dilation=case.dilation, groups=case.groups)


class _Planted(Adapter):
    """Answers with the reference plus ``plant(case, x, w, b, y, dtype) -> y'``, in ``dtype``."""

    name, apis = "planted", ("conv_transpose",)

    def __init__(self, plant, native_dtype=None):
        self.plant, self.native_dtype = plant, native_dtype

    def run(self, case, api, device, dtype, x, w, b):
        y = self.plant(case, x, w, b, _reference(case, x, w, b), dtype)
        call = NativeCall("planted", "NCHW", "(C_in, C_out/g, *K)", "NCHW", "identity")
        return RunOutput(y, self.native_dtype or dtype, call, placed_on="cpu")


def _gamma(n, u):
    return n * u / (1 - n * u)


def _beyond_the_bound(factor):
    def plant(case, x, w, b, y, dtype):
        """y + factor x (gamma(n, u_acc) R + u |y|) at the element of largest R: the worst-case
        error of an n-term accumulation plus the final rounding, which no correct framework
        exceeds, times ``factor``."""
        _, mag = reference_and_magnitude(case, x, w, b)
        acc = "float32" if dtype in ("float16", "bfloat16") else dtype
        n = case.in_channels // case.groups * int(np.prod(case.geometry.kernel))
        idx = np.unravel_index(np.argmax(mag), mag.shape)
        out = y.copy()
        out[idx] += factor * (_gamma(n, unit_roundoff(acc)) * mag[idx] + unit_roundoff(dtype) * abs(y[idx]))
        return out
    return plant


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_a_half_times_the_bound_fails(dtype):
    """Fails with the derived tolerance; would pass with a tolerance twice as loose (so this test
    catches a 2x lenience). 16-bit dtypes: see test_sixteen_bit_accumulation_fails."""
    rec = run_check(LONG, _Planted(_beyond_the_bound(1.5)), "conv_transpose", "cpu", dtype, "strict", [])
    assert rec["status"] == "fail" and rec["failure_kind"] == "value", rec["message"]
    assert rec["mismatched"] == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_just_inside_the_bound_passes(dtype):
    rec = run_check(LONG, _Planted(_beyond_the_bound(0.9)), "conv_transpose", "cpu", dtype, "strict", [])
    assert rec["status"] == "pass", rec["message"]


def _accumulate_in(case, x, w, b, y, dtype):
    """The same sum accumulated in the 16-bit dtype itself (each partial sum rounded)."""
    nd = numpy_dtype(dtype)
    out = np.zeros(y.shape, dtype=nd)
    for ci in range(case.in_channels):  # term by term: every tap of every channel, each sum rounded
        for tap in np.ndindex(*case.geometry.kernel):
            wt = np.zeros_like(w[ci:ci + 1])
            wt[(Ellipsis, *tap)] = w[(ci, slice(None), *tap)]
            part = _reference(case, x[:, ci:ci + 1], wt, None)
            out = (out.astype(np.float64) + part).astype(nd)
    return out.astype(np.float64)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_sixteen_bit_accumulation_fails(dtype):
    rec = run_check(LONG, _Planted(_accumulate_in), "conv_transpose", "cpu", dtype, "strict", [])
    assert rec["status"] == "fail" and rec["failure_kind"] == "value", rec["message"]


def test_correct_rounding_passes():
    """The control: the reference rounded to the dtype passes in every dtype (the plants above
    fail because of the planted error alone)."""
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        rec = run_check(LONG, _Planted(lambda c, x, w, b, y, dt: round_to(y, dt)), "conv_transpose", "cpu",
                        dtype, "strict", [])
        assert rec["status"] == "pass", (dtype, rec["message"])


def test_wrong_output_dtype_fails():
    """A float16 check answered in float64 passes every value test: the dtype must be checked."""
    rec = run_check(LONG, _Planted(lambda c, x, w, b, y, dt: y, native_dtype="float64"), "conv_transpose",
                    "cpu", "float16", "strict", [])
    assert rec["status"] == "fail" and rec["failure_kind"] == "dtype", rec["message"]
    assert "returned float64, not the float16" in rec["message"]
