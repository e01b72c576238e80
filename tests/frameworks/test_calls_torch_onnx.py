"""The native calls of torch and ONNX are written once (adapters/<fw>/calls.py): the adapter runs
the function its record names with exactly the recorded keyword arguments, and the reproducer
script, which embeds that function's source and calls it with those arguments written as
literals, gives the very same array. A record naming anything else, or holding an argument that
is not a plain literal, puts no code into a script."""

from __future__ import annotations

import ast
from types import ModuleType

import numpy as np
import pytest

from convt_conformance.adapters import get_adapter
from convt_conformance.adapters.base import failed_call
from convt_conformance.adapters.call_source import call_source, is_literal, literal
from convt_conformance.checking.check import base_record
from convt_conformance.checking.cotangent import cotangent
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.repro.scripts import repro_script, split_common
from tests.conftest import framework_available

CASE = next(c for c in load_cases([CASES_DIR / "paths"]).cases if c.id == "paths-2d-groups-bias")
# every api of the check, and the function of calls.py its record must name
TORCH = {"conv_transpose": "conv_transpose", "ConvTranspose": "conv_transpose_module",
         "conv_transpose@channels_last": "conv_transpose_channels_last",
         "ConvTranspose@channels_last": "conv_transpose_module_channels_last",
         "conv_transpose@compile": "conv_transpose_compiled",
         "conv_transpose@autocast_bf16": "conv_transpose_autocast_bf16",
         "conv_transpose@deterministic": "conv_transpose_deterministic",
         "conv_transpose:grad_input": "conv_transpose_grad", "conv_transpose:grad_weight": "conv_transpose_grad",
         "conv_transpose:grad_bias": "conv_transpose_grad", "ConvTranspose:grad_input": "conv_transpose_module_grad",
         "ConvTranspose:grad_weight": "conv_transpose_module_grad",
         "ConvTranspose:grad_bias": "conv_transpose_module_grad"}
ONNX = {"ort.ConvTranspose": "onnxruntime_run", "ort.ConvTranspose@opset11": "onnxruntime_run",
        "ref.ConvTranspose": "reference_run", "torch-export.ConvTranspose{n}d": "torch_export_run",
        "torch-dynamo.ConvTranspose{n}d": "torch_export_run"}
CHECKS = [("torch", api, "float32") for api in TORCH] + [("torch", "conv_transpose", "float16")] \
    + [("onnx", api, "float32") for api in ONNX] + [("onnx", "ort.ConvTranspose", "float16")]


def _calls(name: str) -> ModuleType:
    if name == "torch":
        from convt_conformance.adapters.torch import calls
    else:
        from convt_conformance.adapters.onnx import calls
    return calls


def _available(name: str, api: str) -> None:
    for module in (name, *(("torch",) if name == "onnx" and api.startswith("torch-") else ())):
        if not framework_available(module):
            pytest.skip(f"{module} is not installed")
    if api.startswith("torch-dynamo"):
        from convt_conformance.adapters.onnx.export import dynamo_unavailable

        if dynamo_unavailable():
            pytest.skip(dynamo_unavailable())


def test_every_call_is_covered():
    for name, expected in (("torch", TORCH), ("onnx", ONNX)):
        if framework_available(name):
            assert set(expected.values()) == set(_calls(name).CALLS), name


@pytest.mark.parametrize("name,api,dtype", CHECKS, ids=lambda v: str(v))
def test_script_makes_the_adapters_call(name, api, dtype, monkeypatch):
    """The adapter calls the recorded function with the recorded keyword arguments; the script's
    ``native`` (its head: the embedded function called with them as literals) returns the same
    array, in the same dtype, or raises the same error (onnx.reference on a grouped case)."""
    _available(name, api)
    adapter = get_adapter(name)
    adapter.configure("strict")
    calls = _calls(name)
    x, w, b = CASE.tensors(dtype)
    g = cotangent(CASE, dtype)[0] if gradient_quantity(api) else None
    made: list[tuple[str, dict]] = []

    def spy(fn: str, real):
        def call(*args, **kwargs):
            made.append((fn, kwargs))
            return real(*args, **kwargs)
        return call

    with monkeypatch.context() as m:  # what the adapter really passes to calls.py
        for fn in calls.CALLS:
            m.setattr(calls, fn, spy(fn, getattr(calls, fn)))
        try:
            out, error = adapter.run(CASE, api, "cpu", dtype, x, w, b, cotangent=g), None
        except Exception as exc:  # the framework's error: the script must raise it too
            out, error = None, exc.__cause__ or exc
            native_call = failed_call(exc)
            assert native_call is not None, exc
    if out is not None:
        native_call = out.native_call
    args = native_call.arguments
    expected = (TORCH if name == "torch" else ONNX)[api]
    assert made == [(expected, args["call_kwargs"])] and args["call"] == expected
    assert is_literal(args["call_kwargs"])

    rec = base_record(CASE, adapter, api, "cpu", dtype, "strict").as_dict()
    rec.update(status="fail" if out else "error", native_call=native_call.as_dict(), framework_version="x")
    head, whole = split_common(repro_script(rec, CASE))
    assert whole and "NOT AVAILABLE" not in head, head[:400]
    assert "convt_conformance" not in head.split('"""', 1)[1]  # the script imports none of the suite
    env: dict = {"__name__": "reproducer"}
    exec(compile(head, "<reproducer>", "exec"), env)  # noqa: S102 (the suite's own script)
    if g is not None:
        np.testing.assert_array_equal(env["G"], g)  # the script's cotangent is the check's
    if error is not None:
        with pytest.raises(type(error)) as raised:
            env["native"](x, w, b)
        assert str(raised.value) == str(error)
        return
    got, native_dtype = env["native"](x, w, b)
    assert got.dtype == np.float64 and got.shape == out.array.shape
    np.testing.assert_array_equal(got, out.array)
    assert native_dtype == out.native_dtype


@pytest.mark.parametrize("name", ["torch", "onnx"])
def test_hostile_record_gets_no_code(name):
    """A call name outside CALLS (a helper, a builtin, text) gives no script; a hostile string
    argument goes in only as one repr'd literal; a key that is no plain name, or a value that is
    no plain literal, gives no script."""
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    adapter = get_adapter(name)
    calls = _calls(name)
    good = "conv_transpose" if name == "torch" else "onnxruntime_run"
    kwargs = ({"stride": [1, 1], "padding": [0, 0], "output_padding": [0, 0], "groups": 1, "dilation": [1, 1],
               "device": "cpu", "dtype": "float32"} if name == "torch" else
              {"attributes": {"kernel_shape": [1, 1]}, "opset": 17, "ir_version": 8, "dtype": "float32",
               "device": "cpu"})

    def source(call: object, kw: object) -> str | None:
        return adapter.repro_call({"function": "x", "arguments": {"call": call, "call_kwargs": kw}})

    assert source(good, kwargs) is not None
    for call in ("to_tensor", "conv_transpose_model", "session_run", "__import__", "eval", "os.system",
                 f"{good}; import os", f"{good}\nimport os", None, 3, ["conv_transpose"]):
        assert source(call, kwargs) is None, call
    hostile = 'cpu"""\n import os\nos.system("x")  # \'\'\''
    src = source(good, {**kwargs, "device": hostile})
    assert src is not None and "\n import os" not in src and "\nos.system" not in src
    tree = ast.parse(src)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert strings.count(hostile) == 1  # one string literal, exactly the recorded value
    assert not any(isinstance(n, ast.Import) and any(a.name == "os" for a in n.names) for n in ast.walk(tree))
    for bad in ({**kwargs, "x=1, __import__('os')": 1}, {**kwargs, "device": object()},
                {**kwargs, "device": float("inf")}, {**kwargs, "device": b"cpu"}, {**kwargs, "class": 1},
                {**kwargs, "stride": {1: 2}}, [("device", "cpu")], "device='cpu'"):
        assert source(good, bad) is None, bad
    assert call_source(calls, {"call": "nope", "call_kwargs": {}}) is None
    assert literal(hostile) == repr(hostile) and ast.literal_eval(literal(hostile)) == hostile


def test_hostile_gradient_and_numpy_records_get_no_code():
    if framework_available("torch"):
        torch = get_adapter("torch")
        kw = {"wrt": "weight", "stride": [1, 1], "padding": [0, 0], "output_padding": [0, 0], "groups": 1,
              "dilation": [1, 1], "device": "cpu", "dtype": "float32"}
        good = {"arguments": {"call": "conv_transpose_grad", "call_kwargs": kw}}
        assert torch.repro_gradient_call(good, "grad_weight") is not None
        assert torch.repro_gradient_call(good, "grad_input") is None  # not the recorded quantity
        assert torch.repro_call(good) is None  # a gradient call is no forward call
        for call in ("conv_transpose", "to_tensor", "compiled_conv_transpose"):
            assert torch.repro_gradient_call({"arguments": {"call": call, "call_kwargs": kw}}, "grad_weight") is None
    numpy = get_adapter("numpy")
    kw = {"stride": [1, 1], "padding": [[0, 0], [0, 0]], "output_padding": [0, 0], "dilation": [1, 1], "groups": 1}

    def source(call: object, kwargs: object) -> str | None:
        return numpy.repro_call({"function": "x", "arguments": {"call": call, "call_kwargs": kwargs}})

    assert source("conv_transpose_recipe", kw) is not None
    for call, bad in (("conv_transpose_x", kw), ("_prepare", kw), ("__import__", kw), (None, kw), (["x"], kw),
                      ("conv_transpose_recipe", {**kw, "evil": 1}), ("conv_transpose_recipe", None),
                      ("conv_transpose_recipe", {**kw, "groups": object()})):
        assert source(call, bad) is None, (call, bad)
    src = source("conv_transpose_recipe", {**kw, "groups": '1)\nimport os'})
    assert src is not None and "\nimport os" not in src and repr('1)\nimport os') in src
    # the text of `function` decides nothing
    assert numpy.repro_call({"function": "convt_conformance.oracle.forward.conv_transpose_recipe"}) is None


def test_helpers_are_embedded_with_the_call():
    """A call's script carries the source of every helper of calls.py it uses (and only those),
    so it runs without the suite; the compile cache too."""
    if not framework_available("torch"):
        pytest.skip("torch is not installed")
    from convt_conformance.adapters.torch import calls

    kw = {"stride": [1], "padding": [0], "output_padding": [0], "groups": 1, "dilation": [1], "device": "cpu",
          "dtype": "float64"}
    src = call_source(calls, {"call": "conv_transpose", "call_kwargs": kw}, result="out, facts")
    assert src is not None
    defs = [n.name for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)]
    assert defs == ["to_tensor", "as_numpy", "conv_transpose"]
    env = {"np": np, "x": np.ones((1, 1, 3)), "w": np.ones((1, 1, 2)), "b": None}
    exec(src, env)  # noqa: S102 (the suite's own source)
    np.testing.assert_array_equal(env["out"], [[[1.0, 2.0, 2.0, 1.0]]])
    src = call_source(calls, {"call": "conv_transpose_compiled", "call_kwargs": kw})
    assert src is not None and "def compiled_conv_transpose" in src and "@functools.lru_cache" in src
