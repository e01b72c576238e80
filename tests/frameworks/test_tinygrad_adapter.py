"""The tinygrad adapter (``Tensor.conv_transpose2d``, rank-generic, on the CPU or PYTHON device)
against the reference.

Skips with a reason when tinygrad is not installed. Known tinygrad bugs come from
known_disagreements.yaml. Without clang the checks run on tinygrad's PYTHON device (an
interpreter: about 0.3 s a new shape), so every case here is a few multiply-adds.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tinygrad", reason="tinygrad is not installed (pip install -e '.[tinygrad]')")

from convt_conformance.adapters.tinygrad import adapter as tg_adapter  # noqa: E402
from convt_conformance.adapters.tinygrad import calls as tg_calls  # noqa: E402
from convt_conformance.checking.check import run_check  # noqa: E402
from convt_conformance.library import KNOWN_FILE  # noqa: E402
from convt_conformance.loading.case_checks import case_from_raw  # noqa: E402
from convt_conformance.loading.cases import load_cases  # noqa: E402
from convt_conformance.loading.known import load_known  # noqa: E402
from tests.conftest import DATA, integer_case  # noqa: E402

PROBES = {c.id: c for c in load_cases([DATA / "probes"]).cases}
KNOWN, _ = load_known(KNOWN_FILE)
DTYPES = ["float32", "float16", "bfloat16", "float64"]


@pytest.fixture(scope="module")
def tg(shared_adapter):
    return shared_adapter("tinygrad")


def _case(**keys):
    """A case from a mapping (integer data: exact in every dtype)."""
    return integer_case("test_tinygrad_adapter.py", DTYPES, **{"co": 2, "spatial": [2, 3], "kernel": [2, 2], **keys})


# (case, the column that must pass it exactly in every dtype)
CONFIGS = [
    (_case(id="tg-1d-stride-outpad", spatial=[3], kernel=[2], stride=2, padding=1, output_padding=1,
           expected_shape=[1, 2, 5]), "conv_transpose2d"),
    (_case(id="tg-2d-unequal-pairs", stride=[2, 1], padding=[[1, 0], [0, 2]], dilation=[1, 2],
           expected_shape=[1, 2, 3, 3]), "conv_transpose2d:pairs"),
    (_case(id="tg-2d-groups-bias", ci=2, co=2, groups=2, stride=2, padding=1, bias={"values": [1, -2]},
           expected_shape=[1, 2, 2, 4]), "conv_transpose2d:int"),
    (_case(id="tg-3d", ci=1, co=1, spatial=[2, 1, 2], kernel=[1, 2, 2], stride=[1, 2, 1],
           expected_shape=[1, 1, 2, 2, 3]), "conv_transpose2d"),
]


@pytest.mark.parametrize("case, api", CONFIGS, ids=[c.id for c, _ in CONFIGS])
def test_explicit_configurations_match_the_reference(tg, case, api):
    for dtype in case.dtypes:
        rec = run_check(case, tg, api, "cpu", dtype, "strict", KNOWN)
        assert rec["status"] == "pass", (dtype, rec["status"], rec["message"])
        assert rec["max_abs_err"] == 0.0 and rec["native_dtype"] == dtype
        call = rec["native_call"]
        assert call["arguments"]["device"] == tg_calls.device_choice()[0] == call["arguments"]["placed_on"]
        assert not call["weight_flip"]


def test_pairs_form_is_last_axis_first():
    """tinygrad's flat padding lists the LAST axis first: (begin_W, end_W, begin_H, end_H)."""
    assert tg_adapter.flat_pairs([(1, 0), (0, 2)]) == [0, 2, 1, 0]
    assert tg_adapter.flat_pairs([(3, 4)]) == [3, 4]


def test_padding_forms_and_their_refusals():
    unequal = _case(id="tg-unequal", padding=[[1, 0], [0, 0]], expected_shape=[1, 2, 2, 4])
    per_axis = _case(id="tg-per-axis", padding=[1, 0], expected_shape=[1, 2, 1, 4])
    assert tg_adapter.padding_argument(unequal, "conv_transpose2d:pairs") == ([0, 0, 1, 0], None)
    assert tg_adapter.padding_argument(per_axis, "conv_transpose2d") == ([1, 0], None)
    assert "the 2*rank form is the conv_transpose2d:pairs column" in tg_adapter.padding_argument(
        unequal, "conv_transpose2d")[1]
    assert "differs between axes" in tg_adapter.padding_argument(per_axis, "conv_transpose2d:int")[1]


@pytest.mark.parametrize("quantity", ["grad_input", "grad_weight", "grad_bias"])
def test_gradients_match_the_reference(tg, quantity):
    case = CONFIGS[2][0]
    for dtype in ("float32", "bfloat16"):
        rec = run_check(case, tg, f"conv_transpose2d:{quantity}", "cpu", dtype, "strict", KNOWN)
        assert rec["status"] == "pass", (quantity, dtype, rec["status"], rec["message"])
        assert rec["native_dtype"] == dtype
        assert rec["native_call"]["arguments"]["method"] == "Tensor.gradient"


def test_probe_refusal_is_unsupported_with_the_reason(tg):
    rec = run_check(PROBES["probe-2d-unequal-pads"], tg, "conv_transpose2d", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "unsupported" and "unequal (begin, end) padding pairs" in rec["message"]
    rec = run_check(PROBES["probe-2d-unequal-pads"], tg, "conv_transpose2d:pairs", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "pass", rec["message"]


def test_channels_mismatch_is_rejected_naming_its_rule(tg):
    """A channels mismatch is refused by tinygrad's conv2d assertion, which the patterns name."""
    raw = {"id": "tg-channels", "dtypes": ["float32"], "expected": {"error": True},
           "input": {"random": {"shape": [1, 3, 2, 2], "distribution": "integers", "low": -3, "high": 3, "seed": 1}},
           "weight": {"random": {"shape": [2, 2, 2, 2], "distribution": "integers", "low": -3, "high": 3, "seed": 2}}}
    problems: list = []
    case = case_from_raw(raw, "test_tinygrad_adapter.py", "cases[0]", problems)
    assert case is not None and not problems, problems
    rec = run_check(case, tg, "conv_transpose2d", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "rejected", (rec["status"], rec["message"])
    assert "does not match the shape of the weights" in rec["message"]
    assert rec["rejection"]["rule_named"] == "channels-mismatch", rec["rejection"]


def test_stride_zero_is_the_known_accepted_invalid(tg):
    raw = {"id": "tg-stride0", "dtypes": ["float32"], "expected": {"error": True}, "stride": 0,
           "input": {"random": {"shape": [1, 1, 3], "distribution": "integers", "low": -3, "high": 3, "seed": 1}},
           "weight": {"random": {"shape": [1, 1, 2], "distribution": "integers", "low": -3, "high": 3, "seed": 2}}}
    problems: list = []
    case = case_from_raw(raw, "test_tinygrad_adapter.py", "cases[0]", problems)
    assert case is not None and not problems, problems
    rec = run_check(case, tg, "conv_transpose2d", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "xfail" and rec["known"]["id"] == "tinygrad-nonpositive-stride-accepted", rec


def test_default_device_is_never_selected(tg):
    """The adapter names its device on every tensor: tinygrad never picks (and exports) a default."""
    run_check(CONFIGS[0][0], tg, "conv_transpose2d", "cpu", "float32", "strict", KNOWN)
    from tinygrad import Device

    assert "_select_device" not in vars(Device)  # functools.cached_property: set once read


def test_reproducer_source_makes_the_recorded_call(tg):
    case = CONFIGS[1][0]
    rec = run_check(case, tg, "conv_transpose2d:pairs", "cpu", "bfloat16", "strict", KNOWN)
    src = tg.repro_call(rec["native_call"])
    assert src is not None and "def conv_transpose(" in src and "padding=[0, 2, 1, 0]" in src
    x, w, b = case.tensors("bfloat16")
    scope = {"np": np, "x": x, "w": w, "b": b, "DTYPE": "bfloat16"}
    exec(compile(src, "<repro>", "exec"), scope)
    rerun = tg.run(case, "conv_transpose2d:pairs", "cpu", "bfloat16", x, w, b)
    assert scope["native_dtype"] == "bfloat16" and np.array_equal(scope["out"], rerun.array)


def test_gradient_reproducer_differentiates_the_recorded_call(tg):
    case = CONFIGS[2][0]
    rec = run_check(case, tg, "conv_transpose2d:grad_weight", "cpu", "float32", "strict", KNOWN)
    src = tg.repro_gradient_call(rec["native_call"], "grad_weight")
    assert src is not None and "def conv_transpose_grad(" in src and "wrt='weight'" in src
    assert tg.repro_gradient_call(rec["native_call"], "grad_input") is None
