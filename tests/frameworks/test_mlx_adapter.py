"""The MLX adapter (mlx.core.conv_transpose{1,2,3}d, mlx.core.conv_general with input_dilation and
flip=True, mlx.nn.ConvTranspose{1,2,3}d on MLX's CPU backend) against the reference.

Skips with a reason when mlx is not installed. Known MLX bugs come from known_disagreements.yaml.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlx.core", reason="mlx is not installed (pip install -e '.[mlx]')")

from convt_conformance.adapters.mlx import calls as mlx_calls  # noqa: E402
from convt_conformance.checking.check import run_check  # noqa: E402
from convt_conformance.checking.invalid_rules import classify_rejection  # noqa: E402
from convt_conformance.library import CASES_DIR, KNOWN_FILE  # noqa: E402
from convt_conformance.loading.cases import load_cases  # noqa: E402
from convt_conformance.loading.known import load_known  # noqa: E402
from tests.conftest import DATA, integer_case  # noqa: E402

PROBES = {c.id: c for c in load_cases([DATA / "probes"]).cases}
KNOWN, _ = load_known(KNOWN_FILE)
INVALID = {c.id: c for c in load_cases([CASES_DIR / "invalid"]).cases}
DTYPES = ("float32", "float16", "bfloat16")


@pytest.fixture(scope="module")
def mlx(shared_adapter):
    return shared_adapter("mlx")


def _case(**keys):
    """A case from a mapping (integer data: exact in every dtype)."""
    return integer_case("test_mlx_adapter.py", keys.pop("dtypes", DTYPES), **keys)


# explicit configurations: (case, the columns that must pass it exactly in every dtype, gradients too)
CONFIGS = [
    (_case(id="mlx-pads-outpad", stride=[2, 3], padding=[1, 2], output_padding=[1, 2], expected_shape=[1, 3, 5, 10]),
     ("conv_transpose", "conv_general")),
    (_case(id="mlx-dilated", stride=2, dilation=[2, 1], padding=[1, 1], output_padding=[0, 1],
           expected_shape=[1, 3, 5, 8]), ("conv_transpose", "conv_general")),
    (_case(id="mlx-groups-1d", ci=4, co=6, groups=2, spatial=[5], kernel=[3], stride=2, padding=1,
           expected_shape=[1, 6, 9]), ("conv_transpose", "conv_general")),
    (_case(id="mlx-unequal-pads", spatial=[3, 3], kernel=[3, 2], stride=2, padding=[[2, 0], [0, 1]],
           expected_shape=[1, 3, 5, 5]), ("conv_general",)),
    (_case(id="mlx-layer-bias-3d", spatial=[2, 3, 2], kernel=[2, 1, 2], stride=[2, 1, 3], padding=[0, 0, 1],
           bias={"values": [1, -2, 3]}, expected_shape=[1, 3, 4, 3, 3]), ("ConvTranspose",)),
]


@pytest.mark.parametrize("case, apis", CONFIGS, ids=[c.id for c, _ in CONFIGS])
def test_explicit_configurations_match_the_reference(mlx, case, apis):
    for api in apis:
        for dtype in case.dtypes:
            rec = run_check(case, mlx, api, "cpu", dtype, "strict", KNOWN)
            assert rec["status"] == "pass", (api, dtype, rec["status"], rec["message"])
            assert rec["max_abs_err"] == 0.0 and rec["native_dtype"] == dtype
            call = rec["native_call"]
            assert call["arguments"]["placed_on"]["device"] == "Device(cpu, 0)" and not call["weight_flip"]
            assert call["input_layout"].endswith("C") and call["weight_layout"] == "(C_out, *K, C_in/groups)"


@pytest.mark.parametrize("case, apis", CONFIGS, ids=[c.id for c, _ in CONFIGS])
def test_gradients_match_the_reference(mlx, case, apis):
    for api in apis:
        for quantity in ("grad_input", "grad_weight", "grad_bias"):
            if quantity == "grad_bias" and case.bias is None:
                continue
            rec = run_check(case, mlx, f"{api}:{quantity}", "cpu", "float32", "strict", KNOWN)
            assert rec["status"] == "pass", (api, quantity, rec["status"], rec["message"])
            assert rec["native_call"]["arguments"]["method"].startswith("mx.vjp")


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_weight_layout_is_a_regroup_and_its_inverse(groups):
    """Canonical (C_in, C_out/g, *K) -> MLX (C_out, *K, C_in/g): output channel o of group j holds
    w[j*C_in/g + i, o - j*C_out/g] at [o, ..., i]; canonical_weight undoes it."""
    w = np.arange(6 * 2 * 3 * 2, dtype=np.float64).reshape(6, 2, 3, 2)
    wn = mlx_calls.native_weight(w, groups)
    cig, cog = 6 // groups, 2
    assert wn.shape == (groups * cog, 3, 2, cig)
    for o in range(groups * cog):
        j = o // cog
        for i in range(cig):
            assert np.array_equal(wn[o, ..., i], w[j * cig + i, o - j * cog])
    assert np.array_equal(mlx_calls.canonical_weight(wn, groups), w)


def test_probes_declare_an_in_out_swap_channels_last(mlx):
    probes = {p.api: p.declared for p in mlx.probes()}
    assert probes == {"conv_transpose2d": ("in/out swap", "channels-last"),
                      "conv_general": ("in/out swap", "channels-last")}


@pytest.mark.parametrize("api, case_id, dtype, words", [
    # MLX's own refusals of valid configurations (rejections.yaml `unsupported`)
    ("conv_transpose", "probe-2d", "float64", "[Convolution::eval] got unsupported data type"),
    ("conv_general:grad_weight", "probe-2d", "float64", "[Convolution::eval] got unsupported data type"),
    ("conv_transpose", "probe-3d-groups", "float32", "Can only handle groups != 1 in 1D or 2D convolutions"),
    # what the native API cannot express (the adapter's reasons)
    ("conv_transpose", "probe-1d", "float32", "mlx.core.conv_transpose1d has no bias argument"),
    ("conv_general", "probe-1d", "float32", "mlx.core.conv_general has no bias argument"),
    ("ConvTranspose", "probe-2d-groups", "float32", "mlx.nn.ConvTranspose2d has no groups argument"),
    ("conv_transpose", "probe-2d-unequal-pads", "float32", "unequal (begin, end) padding pairs"),
])
def test_refusals_are_unsupported_with_mlxs_reason(mlx, api, case_id, dtype, words):
    rec = run_check(PROBES[case_id], mlx, api, "cpu", dtype, "strict", KNOWN)
    assert rec["status"] == "unsupported", (rec["status"], rec["message"])
    assert words in rec["message"], rec["message"]


def test_float64_without_input_dilation_runs_and_is_float32_inside(mlx):
    """Stride 1 and dilation 1 (no input or kernel dilation): MLX runs float64 and returns float64
    (exact on integer data); on non-integer data it is the known float32-inside finding. With a
    dilation it refuses float64 (probe-2d-dilated)."""
    case = _case(id="mlx-f64-integers", dtypes=["float64"], padding=[1, 0], expected_shape=[1, 3, 2, 6])
    rec = run_check(case, mlx, "conv_transpose", "cpu", "float64", "strict", KNOWN)
    assert rec["status"] == "pass" and rec["native_dtype"] == "float64", rec["message"]
    rec = run_check(PROBES["probe-2d-dilated"], mlx, "conv_transpose", "cpu", "float64", "strict", KNOWN)
    assert rec["status"] == "unsupported", rec["message"]
    rec = run_check(case, mlx, "conv_transpose:grad_input", "cpu", "float64", "strict", KNOWN)
    assert rec["status"] == "pass" and rec["native_dtype"] == "float64", rec["message"]
    case = _case(id="mlx-f64-uniform", dtypes=["float64"], dist="uniform", spatial=[4], kernel=[3],
                 expected_shape=[1, 3, 6])
    rec = run_check(case, mlx, "conv_transpose", "cpu", "float64", "strict", KNOWN)
    assert rec["status"] == "xfail" and rec["known"]["id"] == "mlx-float64-in-float32", rec["message"]


@pytest.mark.parametrize("message, rule", [
    ("ValueError: [conv] Kernel dilation sizes must be positive. Got kernel dilation (0,1).", "nonpositive-dilation"),
    ("ValueError: [conv] Input dilation sizes must be positive. Got input dilation (0).", "nonpositive-stride"),
    ("ValueError: [conv] The input channels must be divisible by the number of groups. Got input with shape "
     "(1,3,4) and 2 groups.", "groups-indivisible"),
    ("ValueError: [conv] Expect the input channels in the input and weight array to match but got shapes - "
     "input: (1,4,2) and weight: (3,2,3)", "channels-mismatch"),
    ("ValueError: [conv] Invalid weight array with 4 dimensions for 1D convolution.", "rank-mismatch"),
    ("ValueError: [conv] Spatial dimensions of input after padding cannot be smaller than weight spatial "
     "dimensions.", "nonpositive-output"),
])
def test_rejection_messages_name_the_rule(message, rule):
    assert classify_rejection("mlx", message, [rule])["rule_named"] == rule


def test_invalid_zero_dilation_is_rejected_for_the_right_reason(mlx):
    case = INVALID["inv-zero-dilation-r2-g1-d1-b0"]
    rec = run_check(case, mlx, "conv_transpose", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "rejected", (rec["status"], rec["message"])
    assert "Kernel dilation sizes must be positive" in rec["message"]


def test_negative_dilated_pad_is_the_known_disagreement(mlx):
    """in 4, k 1, stride 2, padding 1: MLX returns length 3, the rule says 5."""
    case = _case(id="mlx-neg-pad", dtypes=["float32"], spatial=[4], kernel=[1], stride=2, padding=1,
                 expected_shape=[1, 3, 5])
    for api in ("conv_transpose", "conv_general"):
        rec = run_check(case, mlx, api, "cpu", "float32", "strict", KNOWN)
        assert rec["status"] == "xfail" and rec["known"]["id"] == "mlx-negative-dilated-pad", rec["message"]
        assert rec["shape"] == [1, 3, 3]


def test_grad_input_with_output_padding_is_the_known_disagreement(mlx):
    case = _case(id="mlx-outpad-grad", dtypes=["float32"], spatial=[3], kernel=[1], stride=3, output_padding=2,
                 expected_shape=[1, 3, 9])
    rec = run_check(case, mlx, "conv_transpose", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "pass", rec["message"]
    rec = run_check(case, mlx, "conv_transpose:grad_input", "cpu", "float32", "strict", KNOWN)
    assert rec["status"] == "xfail" and rec["known"]["id"] == "mlx-grad-input-output-padding", rec["message"]


@pytest.mark.parametrize("api", ["conv_general", "ConvTranspose:grad_weight", "conv_transpose:grad_input"])
def test_reproducer_source_makes_the_recorded_call(mlx, api):
    case = CONFIGS[4][0] if api.startswith("ConvTranspose") else CONFIGS[0][0]
    rec = run_check(case, mlx, api, "cpu", "bfloat16", "strict", KNOWN)
    assert rec["status"] == "pass", rec["message"]
    quantity = api.split(":")[1] if ":" in api else None
    src = (mlx.repro_gradient_call(rec["native_call"], quantity) if quantity
           else mlx.repro_call(rec["native_call"]))
    assert src is not None and "def mlx_conv(" in src and "def native_weight(" in src
    x, w, b = case.tensors("bfloat16")
    g = np.random.default_rng(0).integers(-3, 3, rec["expected_shape"] if not quantity
                                          else case.output_shape).astype(np.float64)
    scope = {"np": np, "x": x, "w": w, "b": b, "G": g, "DTYPE": "bfloat16"}
    exec(compile(src, "<repro>", "exec"), scope)
    rerun = mlx.run(case, api, "cpu", "bfloat16", x, w, b, cotangent=g if quantity else None)
    assert scope["native_dtype"] == "bfloat16" and np.array_equal(scope["out"], rerun.array)


def test_a_described_call_of_a_label_is_the_columns_call(mlx):
    """A results file records the label (conv_transpose1d:grad_weight): describe_call maps it back."""
    case = PROBES["probe-2d"]
    call = mlx.describe_call(case, "conv_transpose2d:grad_weight", "cpu", "float32")
    assert call is not None and call.arguments["call_kwargs"]["api"] == "conv_transpose"
    assert call.arguments["call_kwargs"]["wrt"] == "weight"
    assert mlx.describe_call(case, "not_a_column", "cpu", "float32") is None
