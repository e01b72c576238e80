"""Execution paths (API columns with an ``@path`` suffix): each matches the reference on the
asymmetric probes, records its path in native_call, autocast's tolerance follows its compute
dtype, the torch.compile cache works, the subset rule and report order hold."""

from __future__ import annotations

import numpy as np
import pytest

from convt_conformance.adapters import NativeCall, RunOutput, get_adapter
from convt_conformance.adapters.base import Adapter
from convt_conformance.adapters.path_subsets import split_api
from convt_conformance.checking.check import reference_and_magnitude, run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from convt_conformance.loading.profiles import in_subset, select
from convt_conformance.model.dtypes import round_to
from convt_conformance.report.html import api_family, column_order
from convt_conformance.run.plan import load_run_profile
from tests.conftest import DATA, framework_available

PROBES = {c.id: c for c in load_cases([DATA / "probes"]).cases}
PATH_CASES = {c.id: c for c in load_cases([CASES_DIR / "paths"]).cases}
# torch.compile costs seconds per new shape (cold): one probe (rank 2, stride, padding,
# output_padding); the suite's path cases cover the other feature rows
COMPILE_PROBES = ("probe-2d",)


def _adapter(name: str):
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    a = get_adapter(name)
    a.configure("strict")
    return a


def _path_columns() -> list[tuple[str, str]]:
    out = []
    for name in ("torch", "tensorflow", "jax"):
        a = get_adapter(name)
        out += [(name, api) for api in a.apis if split_api(api)[1]]
    return out


def _probe_ids(name: str, api: str) -> list[str]:
    return list(COMPILE_PROBES) if api.endswith("@compile") else list(PROBES)


def test_every_issue_path_is_a_column():
    cols = set(_path_columns())
    for want in [("torch", "conv_transpose@channels_last"), ("torch", "ConvTranspose@channels_last"),
                 ("torch", "conv_transpose@compile"), ("torch", "conv_transpose@autocast_bf16"),
                 ("torch", "conv_transpose@deterministic"), ("tensorflow", "conv_transpose@xla"),
                 ("tensorflow", "conv_transpose@nchw"), ("jax", "conv_transpose@eager"),
                 ("jax", "conv_general_dilated@eager"), ("jax", "conv_general_dilated@vmap")]:
        assert want in cols


@pytest.mark.parametrize("name,api", _path_columns(), ids=lambda v: str(v))
def test_path_matches_reference_on_probes(name, api):
    a = _adapter(name)
    ran = 0
    path = split_api(api)[1]
    for cid in _probe_ids(name, api):
        case = PROBES[cid]
        for dtype in ("float32", "float64"):
            rec = run_check(case, a, api, "cpu", dtype, "strict", [])
            assert rec["api"].endswith(f"@{path}"), rec["api"]
            if rec["status"] == "unsupported":
                assert rec["message"], "an unsupported check must say why"
                continue
            assert rec["status"] == "pass", f"{name}.{rec['api']} {cid} {dtype}: {rec['message']}"
            assert rec["max_abs_err"] == 0.0  # integer probes: exact (bf16 too: |values| <= 3, short sums)
            call = rec["native_call"]
            assert call["arguments"]["path"] == path
            assert "cpu" in str(call["arguments"]["placed_on"]).lower()
            ran += 1
    if not (name == "tensorflow" and path == "nchw"):  # refused on CPU: its own test below
        assert ran, f"{name}.{api} ran on no probe"


def test_native_call_says_how_the_path_was_taken():
    case = PROBES["probe-2d"]
    expect = {("torch", "conv_transpose@compile"): ("torch.compile", {"backend": "inductor", "dynamic": False}),
              ("torch", "conv_transpose@autocast_bf16"): ("torch.autocast", {"compute_dtype": "bfloat16"}),
              ("torch", "conv_transpose@channels_last"): ("channels_last", {"memory_format": "channels_last"}),
              ("torch", "conv_transpose@deterministic"): ("use_deterministic_algorithms",
                                                          {"use_deterministic_algorithms": True}),
              ("tensorflow", "conv_transpose@xla"): ("jit_compile=True", {"jit_compile": True}),
              ("jax", "conv_transpose@eager"): ("jax.disable_jit", {}),
              ("jax", "conv_general_dilated@vmap"): ("jax.vmap", {"vmap_in_axes": [0, None]})}
    for (name, api), (text, args) in expect.items():
        a = _adapter(name)
        rec = run_check(case, a, api, "cpu", "float32", "strict", [])
        call = rec["native_call"]
        assert text in call["function"], (api, call["function"])
        for k, v in args.items():
            assert call["arguments"][k] == v, (api, k)


def test_tf_nchw_on_cpu_is_tf_own_refusal():
    a = _adapter("tensorflow")
    rec = run_check(PROBES["probe-2d"], a, "conv_transpose@nchw", "cpu", "float32", "strict", [])
    assert rec["status"] == "unsupported"
    assert "the framework refuses it" in rec["message"] and "only supports NHWC" in rec["message"]


def test_torch_channels_last_rank1_unsupported_with_reason():
    a = _adapter("torch")
    rec = run_check(PROBES["probe-1d"], a, "conv_transpose@channels_last", "cpu", "float32", "strict", [])
    assert rec["status"] == "unsupported" and "channels-last memory format" in rec["message"]


def test_autocast_records_compute_dtype_and_tolerance_follows_it():
    a = _adapter("torch")
    case = PATH_CASES["paths-2d-axis-pads-dilation"]  # normal-distributed: bf16 rounding shows
    rec = run_check(case, a, "conv_transpose@autocast_bf16", "cpu", "float32", "strict", [])
    assert rec["status"] == "pass", rec["message"]
    assert rec["compute_dtype"] == "bfloat16" and rec["native_dtype"] == "bfloat16"
    assert rec["tolerance"]["compute_dtype"] == "bfloat16" and rec["tolerance"]["input_rounding"] > 0
    assert rec["max_abs_err"] > 0  # bfloat16 compute really happened
    plain = run_check(case, a, "conv_transpose", "cpu", "float32", "strict", [])
    assert plain["compute_dtype"] == "float32" and "input_rounding" not in plain["tolerance"]
    assert rec["tolerance"]["max"] > 1000 * plain["tolerance"]["max"]
    f64 = run_check(case, a, "conv_transpose@autocast_bf16", "cpu", "float64", "strict", [])
    assert f64["compute_dtype"] == "float64"  # autocast leaves float64 alone


class _Planted(Adapter):
    """Stub: returns the float32 column's answer computed in bfloat16 (inputs and output rounded
    to bfloat16, sum in float64), claiming ``compute_dtype``."""

    name, apis = "planted", ("conv",)

    def __init__(self, compute_dtype):
        self.compute = compute_dtype

    def run(self, case, api, device, dtype, x, w, b):
        xb, wb = round_to(x, "bfloat16"), round_to(w, "bfloat16")
        bb = None if b is None else round_to(b, "bfloat16")
        y, _ = reference_and_magnitude(case, xb, wb, bb)
        return RunOutput(round_to(y, "bfloat16"), "bfloat16", NativeCall("planted", "", "", "", ""),
                         placed_on="cpu", compute_dtype=self.compute)


@pytest.mark.parametrize("cid", ["paths-2d-axis-pads-dilation", "paths-1d-stride-outpad-bias"])
def test_planted_bf16_result_passes_autocast_column_fails_float32(cid):
    case = PATH_CASES[cid]
    as_autocast = run_check(case, _Planted("bfloat16"), "conv", "cpu", "float32", "strict", [])
    assert as_autocast["status"] == "pass", as_autocast["message"]
    as_float32 = run_check(case, _Planted(None), "conv", "cpu", "float32", "strict", [])
    assert as_float32["status"] == "fail" and as_float32["failure_kind"] == "value"


class _PlantedDaz(_Planted):
    """Stub: as :class:`_Planted`, but inputs below bfloat16's normal range read as zero (DAZ)."""

    def run(self, case, api, device, dtype, x, w, b):
        tiny = float(np.finfo(np.float32).tiny)  # bfloat16's normal range starts where float32's does
        return super().run(case, api, device, dtype, np.where(np.abs(x) < tiny, 0.0, x).astype(x.dtype), w, b)


def test_subnormal_inputs_rounded_to_the_compute_dtype_pass_read_as_zero_fail():
    """A float32 subnormal input is a bfloat16 subnormal with fewer digits: rounding it there is an
    absolute error (half bfloat16's smallest subnormal) that the relative input-rounding bound
    misses; the tolerance charges it where such inputs exist (convt_conformance/checking/tolerance.py), so the
    path's own rounding passes and reading them as zero still fails."""
    case = next(c for c in load_cases([CASES_DIR / "edge" / "output_range.yaml"]).cases
                if c.id == "edge-range-subnormal-inputs-scaled")
    rounded = run_check(case, _Planted("bfloat16"), "conv", "cpu", "float32", "strict", [])
    assert rounded["status"] == "pass", rounded["message"]
    assert rounded["max_abs_err"] > 0 and rounded["tolerance"]["input_floor"] > 0
    daz = run_check(case, _PlantedDaz("bfloat16"), "conv", "cpu", "float32", "strict", [])
    assert daz["status"] == "fail" and daz["failure_kind"] in ("value", "subnormal-flush"), daz["message"]
    normal = run_check(PATH_CASES["paths-2d-axis-pads-dilation"], _Planted("bfloat16"), "conv", "cpu", "float32",
                       "strict", [])
    assert "input_floor" not in normal["tolerance"]  # charged only where such inputs exist


def test_an_input_rounded_to_zero_by_the_compute_dtype_is_not_a_flush():
    """The charge of such inputs is not the flushed-products floor that compare() leaves out when
    it looks for a subnormal flush: the path's own rounding of a tiny input to zero passes."""
    case = load_cases([DATA / "autocast"]).cases[0]
    rec = run_check(case, _Planted("bfloat16"), "conv", "cpu", "float32", "strict", [])
    assert rec["status"] == "pass", rec["message"]
    assert rec["tolerance"]["input_floor"] > 0 and rec["max_abs_err"] > 0


def test_compile_cache_hit_on_same_signature():
    from convt_conformance.adapters.torch import paths as torch_paths

    a = _adapter("torch")
    case = PROBES["probe-2d"]
    first = run_check(case, a, "conv_transpose@compile", "cpu", "float32", "strict", [])
    before = torch_paths.compiled_call.cache_info()
    again = run_check(case, a, "conv_transpose@compile", "cpu", "float32", "strict", [])
    after = torch_paths.compiled_call.cache_info()
    assert first["status"] == again["status"] == "pass"
    assert after.hits == before.hits + 1 and after.currsize == before.currsize  # no new compile
    assert again["seconds"] < max(first["seconds"], 0.5)
    other = run_check(PROBES["probe-3d"], a, "conv_transpose@compile", "cpu", "float32", "strict", [])
    assert other["status"] == "pass", other["message"]
    assert torch_paths.compiled_call.cache_info().currsize == after.currsize + 1  # new shape: new entry


def test_path_subsets_are_profile_data_and_cover_the_path_cases():
    """default/quick restrict path columns to `within` subsets (convt_conformance/loading/profiles.yaml);
    full runs every path on every case; a base API is never restricted by them."""
    default = load_run_profile("default")
    compile_rule = default.rule_for("torch.conv_transpose2d@compile").select
    assert compile_rule["within"] == {"tags": ["paths"]}
    case = PATH_CASES["paths-2d-nan-input"]
    assert in_subset(case, compile_rule["within"]) and not in_subset(PROBES["probe-2d"], compile_rule["within"])
    assert "within" not in (default.rule_for("torch.conv_transpose2d").select or {})
    cheap = default.rule_for("torch.conv_transpose2d@channels_last").select["within"]
    sweep = [c for c in load_cases([CASES_DIR / "sweeps"]).cases]
    picked = [c for c in sweep if in_subset(c, cheap)]
    assert 0 < len(picked) < len(sweep)  # the stable one-in-K pick of the sweep
    assert not any(in_subset(c, compile_rule["within"]) for c in sweep)

    class Chk:
        def __init__(self, case, label):
            self.case, self.adapter_name, self.label, self.device, self.dtype = case, "torch", label, "cpu", "float32"

    checks = [Chk(c, "conv_transpose2d@compile") for c in [*sweep, case] if c.rank == 2]
    assert len(select(load_run_profile("full"), checks)) == len(checks)  # full: every case
    chosen = select(default, checks)
    assert chosen and all(in_subset(c.case, compile_rule["within"]) for c in chosen)


def test_path_cases_cover_every_feature_row():
    cs = list(PATH_CASES.values())
    assert {c.rank for c in cs} == {1, 2, 3}
    assert {d for c in cs for d in c.dtypes} == {"float16", "bfloat16", "float32", "float64"}
    valid = [c for c in cs if not c.expected_error]
    assert any(max(c.stride) > 1 for c in valid) and any(max(c.dilation) > 1 for c in valid)
    assert any(max(c.output_padding) > 0 for c in valid) and any(c.groups > 1 for c in valid)
    assert any(c.bias is not None for c in valid)
    assert any(b != e for c in valid for b, e in c.padding)
    assert any(len(set(c.stride)) > 1 for c in valid)
    assert any(c.input.values is not None and not np.isfinite(c.input.values).all() for c in valid)
    assert any(c.weight.values is not None and np.isinf(c.weight.values).any() for c in valid)
    assert sum(c.expected_error for c in cs) >= 3


def test_report_keeps_paths_as_own_columns_next_to_base():
    cols = [("torch", api_family(a), "cpu") for a in
            ("conv_transpose2d@compile", "ConvTranspose2d", "conv_transpose2d", "ConvTranspose2d@channels_last",
             "conv_transpose3d@channels_last")]
    cols += [("numpy", "scatter", "cpu")]
    got = sorted(set(cols), key=column_order)
    assert got == [("numpy", "scatter", "cpu"), ("torch", "ConvTransposeNd", "cpu"),
                   ("torch", "ConvTransposeNd@channels_last", "cpu"), ("torch", "conv_transposeNd", "cpu"),
                   ("torch", "conv_transposeNd@channels_last", "cpu"), ("torch", "conv_transposeNd@compile", "cpu")]


def test_unknown_path_is_an_error_not_a_silent_base_call():
    a = _adapter("jax")
    with pytest.raises(ValueError, match="unknown execution path"):
        a.run(PROBES["probe-2d"], "conv_transpose@nonsense", "cpu", "float32",
              *PROBES["probe-2d"].tensors("float32"))

