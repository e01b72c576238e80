"""OpenVINO adapter: one-op models of ``ConvolutionBackpropData`` and ``GroupConvolutionBackpropData``
(opset1 ops, built with the newest ``openvino.opsetN`` module of the installed release that has
them), compiled for the CPU plugin and inferred.

Native convention (OpenVINO's operation specifications): data ``(N, C_IN, *S)``; filter
``(C_IN, C_OUT, *K)`` for ConvolutionBackpropData, ``(GROUPS, C_IN/GROUPS, C_OUT/GROUPS, *K)`` for
GroupConvolutionBackpropData (the number of groups is the filter's first axis), applied without a
flip; ``pads_begin`` / ``pads_end`` cut from the full output, ``output_padding`` added at its far
end. So the translation is the identity, plus a reshape (no permutation) of the canonical weight
``(C_in, C_out/groups, *K)`` for the grouped op. Neither op has a bias input: a bias is an ``Add``
of a ``(1, C_out, 1, ...)`` constant after the op, as OpenVINO's frontends write it.

Columns (each op): ``<op>`` explicit pads; ``<op>:auto_pad`` auto_pad without an output_shape
input (zero pads only, by the specification); ``<op>:output_shape`` an output_shape input with the
auto_pad whose rule derives the case's pads (convt_conformance/adapters/openvino/padding.py).
``ConvolutionBackpropData`` has no groups: grouped cases are the grouped op's. The gradient
columns exist to say that OpenVINO has none.

Precision: every model is compiled with ``INFERENCE_PRECISION_HINT`` set to the dtype under test
(the CPU plugin otherwise may run float32 models in bfloat16 or float16 where the CPU has them);
what the compiled model reports back (its inference precision, the Deconvolution node's runtime
precision and oneDNN primitive) is recorded in the native call's ``precision``. The CPU plugin
refuses a float64 hint ("Supported values: bf16, f16, f32"): float64 is then `unsupported` in
OpenVINO's words (rejections.yaml).

The native call is convt_conformance/adapters/openvino/calls.py's ``backprop_data_run``; the
adapter records it (``arguments["call"]``) with its keyword arguments (``arguments["call_kwargs"]``):
the reproducer (repro.py) embeds the same function.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.openvino import calls as ov_calls
from convt_conformance.adapters.openvino import padding as ov_padding
from convt_conformance.model.apis import gradient_applies, gradient_quantity, with_gradients

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

OPS = ("ConvolutionBackpropData", "GroupConvolutionBackpropData")
FORMS = ("", ":auto_pad", ":output_shape")
_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
THREADS = 1  # one inference thread per check (the run gives every worker its share of the CPUs)
#: the ops and helpers a one-op model needs from an opset module
_OPSET_NEEDS = ("convolution_backprop_data", "group_convolution_backprop_data", "parameter", "constant", "add")
NO_GRADIENT = ("OpenVINO has no automatic differentiation: it is, in its own words, an \"open-source software "
               "toolkit for optimizing and deploying deep learning models\" (openvino.Core compiles a model and "
               "infers it; no API differentiates one)")


@functools.lru_cache(maxsize=1)
def latest_opset() -> int:
    """The newest ``openvino.opsetN`` module of the installed release that has both ops (opset1
    ops, carried into every later opset module: a module of only the newest ops is skipped)."""
    for n in range(64, 0, -1):
        try:
            module = ov_calls.opset_module(n)
        except ImportError:
            continue
        if all(hasattr(module, name) for name in _OPSET_NEEDS):
            return n
    raise ImportError("no openvino.opsetN module has convolution_backprop_data and group_convolution_backprop_data")


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> tuple[str, ...]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` here (``FP32``, ``BF16``, ``FP16``, ...)."""
    return tuple(str(c) for c in ov_calls.cpu_core(THREADS).get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _parse(api: str) -> tuple[str, str]:
    """(op, form) of a forward column: form ``explicit`` | ``auto_pad`` | ``output_shape``."""
    op, _, form = api.partition(":")
    return op, form or "explicit"


class OpenvinoAdapter(Adapter):
    name = "openvino"
    module = "openvino"
    distributions = ("openvino",)
    apis = (*(f"{op}{form}" for op in OPS for form in FORMS),
            *with_gradients(OPS)[len(OPS):])  # the gradient columns: unsupported (NO_GRADIENT)
    order = 60
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    gpu_capable = False  # the CPU plugin only: OpenVINO's GPU plugin is for Intel GPUs, not CUDA devices

    def _import(self) -> None:
        import openvino  # noqa: F401

        latest_opset()

    def devices(self) -> list[str]:
        return ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        """The CPU plugin's settings (the same for ``strict`` and ``default``: every model's
        inference precision is the dtype under test, set per check)."""
        core = ov_calls.cpu_core(THREADS)

        def prop(key: str) -> str | None:
            try:
                return str(core.get_property("CPU", key))
            except RuntimeError:
                return None
        return {"INFERENCE_NUM_THREADS": THREADS, "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False,
                "INFERENCE_PRECISION_HINT": "the dtype under test, per compiled model",
                "EXECUTION_MODE_HINT": prop("EXECUTION_MODE_HINT"),
                "CPU_DENORMALS_OPTIMIZATION": prop("CPU_DENORMALS_OPTIMIZATION"),
                "OPTIMIZATION_CAPABILITIES": list(cpu_capabilities()), "opset": latest_opset()}

    def facts(self) -> list[str]:
        """``openvino.bf16`` / ``openvino.fp16`` where the CPU plugin lists BF16 / FP16 among its
        optimization capabilities (its native 16-bit kernels)."""
        if "openvino" not in sys.modules:
            return []
        caps = cpu_capabilities()
        return [f"openvino.{c.lower()}" for c in ("BF16", "FP16") if c in caps]

    def probes(self) -> list[ProbeCall]:
        def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            if layout != "channels-first":
                raise ValueError("ConvolutionBackpropData takes N, C_IN, Y, X data only")
            y, _ = ov_calls.backprop_data_run(
                x.astype(np.float64), w.astype(np.float64), None, op="ConvolutionBackpropData", strides=list(stride),
                pads_begin=[0, 0], pads_end=[0, 0], dilations=[1, 1], output_padding=[0, 0], auto_pad=None,
                output_shape=None, groups=1, dtype="float32", opset=latest_opset(), inference_precision="f32",
                threads=THREADS)
            return y
        return [ProbeCall("ConvolutionBackpropData", ("identity", "channels-first"), call)]

    # -- which checks exist and which the native API can express ---------------------------------

    def applies(self, case: Case, api: str) -> bool:
        return gradient_applies(case, api)

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        if gradient_quantity(api):
            return NO_GRADIENT
        op, form = _parse(api)
        if op == "ConvolutionBackpropData" and case.groups != 1:
            return (f"groups={case.groups}: ConvolutionBackpropData has no groups (its filter is (C_IN, C_OUT, *K)); "
                    "the grouped op is GroupConvolutionBackpropData, its own column")
        if op == "GroupConvolutionBackpropData":
            c_in = case.weight.shape[0] if case.weight.shape else 0
            if case.groups < 1 or c_in % case.groups:
                return (f"groups={case.groups}, weight C_in {c_in}: GroupConvolutionBackpropData takes the groups "
                        "as the first axis of its filter (GROUPS, C_IN/GROUPS, C_OUT/GROUPS, *K), which no "
                        "filter can hold here")
        if case.bias is not None and case.bias.shape != (case.out_channels,):
            return (f"a bias of shape {list(case.bias.shape)}: {op} has no bias input; the bias is an Add of a "
                    "(1, C_OUT, 1, ...) constant, where NumPy-style broadcasting, not a bias check, decides")
        if form == "auto_pad":
            mode, why = ov_padding.auto_pad_for(case)
            return why if mode is None else None
        if form == "output_shape":
            mode, _, why = ov_padding.output_shape_for(case)
            return why if mode is None else None
        return None

    # -- the native call -------------------------------------------------------------------------

    def _kwargs(self, case: Case, api: str, dtype: str) -> dict[str, Any]:
        """The keyword arguments of calls.py's ``backprop_data_run`` for this check: plain literals,
        a pure function of the case, the column and the dtype. Invalid cases get their
        hyper-parameters as given: OpenVINO is the one to reject them."""
        op, form = _parse(api)
        pads_begin: list[int] | None = [int(p[0]) for p in case.padding]
        pads_end: list[int] | None = [int(p[1]) for p in case.padding]
        auto_pad: str | None = None
        output_shape: list[int] | None = None
        if form == "auto_pad":
            auto_pad, _ = ov_padding.auto_pad_for(case)
            pads_begin = pads_end = None
        elif form == "output_shape":
            auto_pad, output_shape, _ = ov_padding.output_shape_for(case)
            pads_begin = pads_end = None
        return {"op": op, "strides": [int(s) for s in case.stride], "pads_begin": pads_begin, "pads_end": pads_end,
                "dilations": [int(d) for d in case.dilation], "output_padding": [int(p) for p in case.output_padding],
                "auto_pad": auto_pad, "output_shape": output_shape, "groups": int(case.groups), "dtype": dtype,
                "opset": latest_opset(), "inference_precision": ov_calls.ELEMENT_TYPES[dtype], "threads": THREADS}

    def _native_call(self, case: Case, api: str, kwargs: dict[str, Any], has_bias: bool) -> NativeCall:
        op, form = _parse(api)
        rank = len(case.input.shape) - 2
        grouped = op == "GroupConvolutionBackpropData"
        if form == "auto_pad":
            mapping = f"{ov_padding.auto_pad_for(case)[1]}; output_padding as is"
        elif form == "output_shape":
            mapping = f"{ov_padding.output_shape_for(case)[2]}; output_padding as is"
        else:
            mapping = "pads_begin = begins, pads_end = ends (the canonical pairs, cut from the output); output_padding as is"
        return NativeCall(
            function=f"openvino.opset{kwargs['opset']}.{'group_' if grouped else ''}convolution_backprop_data "
                     "-> Core.compile_model(CPU).infer",
            input_layout=_LAYOUT.get(rank, "?"),
            weight_layout="(GROUPS, C_IN/GROUPS, C_OUT/GROUPS, *K)" if grouped else "(C_IN, C_OUT, *K)",
            output_layout=_LAYOUT.get(rank, "?"),
            weight_transform=("reshape (C_in, C_out/g, *K) -> (g, C_in/g, C_out/g, *K); no permutation, no flip"
                              if grouped else "identity (no permutation, no flip)"),
            weight_permutation=None, weight_flip=False, padding_mapping=mapping,
            arguments={**{k: kwargs[k] for k in ("strides", "pads_begin", "pads_end", "dilations", "output_padding",
                                                 "auto_pad", "output_shape")},
                       "bias": "Add of a (1, C_out, 1, ...) constant" if has_bias else None,
                       "filter": "Constant", "data": "Parameter", "placed_on": None, "dtype": kwargs["dtype"],
                       "call": "backprop_data_run", "call_kwargs": dict(kwargs)},
            precision={"INFERENCE_PRECISION_HINT": kwargs["inference_precision"]})

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        if gradient_quantity(api):
            raise ValueError(f"{api!r}: {NO_GRADIENT}")
        if device != "cpu":
            raise ValueError(f"{self.name} runs on the CPU plugin only, not on {device!r}")
        kwargs = self._kwargs(case, api, dtype)
        call = self._native_call(case, api, kwargs, b is not None)
        try:
            y, facts = ov_calls.backprop_data_run(x, w, b, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        devices = [str(d) for d in facts["device"]]
        placed = "cpu" if devices and all(d.upper().startswith("CPU") for d in devices) else ",".join(devices)
        call.arguments["placed_on"] = devices
        deconv = [n for n in facts["runtime_nodes"] if n.get("layerType") == "Deconvolution"]
        call.precision.update({
            "compiled INFERENCE_PRECISION_HINT": facts["INFERENCE_PRECISION_HINT"],
            "EXECUTION_MODE_HINT": facts["EXECUTION_MODE_HINT"], "INFERENCE_NUM_THREADS": facts["INFERENCE_NUM_THREADS"],
            "Deconvolution runtimePrecision": [n.get("runtimePrecision") for n in deconv],
            "Deconvolution primitiveType": [n.get("primitiveType") for n in deconv],
            "runtime layers": [n.get("layerType") for n in facts["runtime_nodes"]]})
        return RunOutput(y, str(facts["dtype"]), call, placed_on=placed)

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The one-op model's call, described without making it (a pure function of the case)."""
        if gradient_quantity(api):
            return None
        return self._native_call(case, api, self._kwargs(case, api, dtype), case.bias is not None)

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded one-op model compiled and inferred as recorded: repro.py."""
        from convt_conformance.adapters.openvino.repro import forward_source

        return forward_source(native_call)
