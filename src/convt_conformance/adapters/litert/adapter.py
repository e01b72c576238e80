"""LiteRT adapter: ``tf.nn.conv{1,2,3}d_transpose`` in a ``tf.function``, converted by TensorFlow's
converter (``tf.lite.TFLiteConverter.from_concrete_functions``) and run by the LiteRT interpreter
(``ai_edge_litert.interpreter.Interpreter``, its default op resolver: builtin kernels and the
XNNPACK delegate).

Native convention (TensorFlow's, kept by the converter): channels-last data ``(N, *S, C_in)``,
filter ``(*K, C_out, C_in)`` not flipped (stored by the converter as TFLite's ``(C_out, *K,
C_in)``), padding ``'SAME'`` or ``'VALID'`` with the whole output shape given. The converter makes
TRANSPOSE_CONV of rank 2 (rank 1: RESHAPE around it, as tf.nn.conv1d_transpose is written) and
CONV_3D_TRANSPOSE of rank 3; each check records the operators the converted model holds, with
their options, and the interpreter's execution plan (DELEGATE nodes included). Translation from the
canonical convention:

- input/output: channels moved last / back first (layout only);
- weight: permute ``(C_in, C_out, *K) -> (*K, C_out, C_in)``; no flip;
- padding: TFLite has no pads: the case's pads must be what ``'VALID'`` or ``'SAME'`` derives for
  its output size (convt_conformance/adapters/litert/padding.py), else unsupported;
- output_padding: folded into ``output_shape``.

Columns: ``conv_transpose`` (a float32 model, or the dtype under test: the converter refuses the
others; the interpreter's default op resolver, so XNNPACK runs what it takes);
``conv_transpose:builtin`` (the same model, the interpreter built with
``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``: TFLite's own kernels, no delegate);
``conv_transpose:fp16_weights`` (the converter's float16 weights: a float32 model whose
filter and bias are stored in float16 and dequantized to float32 before the op; its checks are the
float16 ones: inputs already float16 values go in as float32, so the float16 storage rounds
nothing, and it computes and returns float32, its ``compute_dtype``); the gradient columns exist to
say that LiteRT has none. No groups: TFLite has no grouped transposed convolution.

The native call is convt_conformance/adapters/litert/calls.py's ``litert_run``; the adapter records
it (``arguments["call"]``) with its keyword arguments (``arguments["call_kwargs"]``): the
reproducer (repro.py) embeds the same function.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.litert import calls as lr_calls
from convt_conformance.adapters.litert import padding as lr_padding
from convt_conformance.model.apis import gradient_applies, gradient_label, gradient_quantity

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

FORWARD = ("conv_transpose", "conv_transpose:builtin", "conv_transpose:fp16_weights")
#: the interpreter's op resolver per forward column (calls.py ``interpret``)
RESOLVERS = {"conv_transpose": "AUTO", "conv_transpose:builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
             "conv_transpose:fp16_weights": "AUTO"}
#: the converter's refusals of valid configurations, as tensorflow (the converter) SEEN_ON words
#: them: on that release the checks are `unsupported` with these words without converting (a
#: refused conversion costs as much as a model); on any other release the converter is asked
#: (the same words are `unsupported` patterns of rejections.yaml, with their versions).
#: tests/frameworks/test_litert_adapter.py asks the installed converter and compares.
SEEN_ON = "2.21.0"
REFUSED_DTYPE = {
    "float16": "ConverterError: 'tf.Conv{n}DBackpropInput{v2}' op is neither a custom op nor a flex op (TF Select ops: "
               "Conv{n}DBackpropInput{v2}): the converter has no TFLite op for a float16 transposed convolution",
    "float64": "ConverterError: 'tf.Conv{n}DBackpropInput{v2}' op is neither a custom op nor a flex op (TF Select ops: "
               "Conv{n}DBackpropInput{v2}): the converter has no TFLite op for a float64 transposed convolution",
    "bfloat16": "ValueError: Unsupported TensorFlow type `<dtype: 'bfloat16'>` provided for the input type of the "
                "TensorFlow model",
}
REFUSED_DILATION = ("ConverterError: 'tf.Conv2DBackpropInput' op is neither a custom op nor a flex op (TF Select ops: "
                    "Conv2DBackpropInput, dilations {d}): TFLite's TRANSPOSE_CONV has no dilation")
THREADS = 1  # one interpreter thread per check (the run gives every worker its share of the CPUs)
_LAYOUT = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
NO_GRADIENT = ("LiteRT has no automatic differentiation: it is an inference runtime (the converter "
               "produces an inference graph; ai_edge_litert.interpreter.Interpreter runs it forward; no API "
               "differentiates a model)")
NO_GROUPS = ("TFLite has no grouped transposed convolution: TRANSPOSE_CONV's and CONV_3D_TRANSPOSE's filters "
             "hold every input channel (C_OUT, *K, C_IN), and tf.nn.conv{n}d_transpose traced in a tf.function "
             "refuses a filter whose in_channels are not the input's (ValueError: Dimensions must be equal)")
FP16_DTYPE = ("the fp16_weights column runs the float16 checks: a float32 model whose constants the converter "
              "stores in float16 (Optimize.DEFAULT, supported_types=[tf.float16]); a {dtype} check would "
              "have its weights rounded to float16 by the converter, a rounding the {dtype} reference does not "
              "include")


def _versions() -> dict[str, str]:
    """The TensorFlow (converter) and ai_edge_litert (interpreter) versions, when imported."""
    out = {}
    for name in ("tensorflow", "ai_edge_litert"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    return out


class LitertAdapter(Adapter):
    name = "litert"
    module = "ai_edge_litert"
    distributions = ("ai-edge-litert",)
    apis = (*FORWARD, *(f"conv_transpose:{q}" for q in ("grad_input", "grad_weight", "grad_bias")))
    order = 65
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    gpu_capable = False  # the interpreter's CPU kernels and XNNPACK delegate

    @classmethod
    def process_environment(cls) -> dict[str, str]:
        """TensorFlow's C++ log quiet but for errors (the converter imports TensorFlow), as the
        tensorflow adapter sets it."""
        return {"TF_CPP_MIN_LOG_LEVEL": "2"}

    @classmethod
    def affinity_group(cls, api_label: str) -> str:
        """``tensorflow``: a LiteRT check's set-up is TensorFlow's import (its converter; the
        interpreter itself imports in about 0.5 s), so its checks share the tensorflow column's
        worker, where that import is already paid."""
        return "tensorflow"

    def _import(self) -> None:
        import tensorflow  # noqa: F401
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    def devices(self) -> list[str]:
        return ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        """The interpreter's settings (the same for ``strict`` and ``default``: the model's dtype
        is the dtype under test, float32 for the fp16_weights column)."""
        import ai_edge_litert
        import tensorflow as tf

        return {"num_threads": THREADS, "op_resolver": ("per column: AUTO (builtin kernels + XNNPACK delegate); "
                                                           "BUILTIN_WITHOUT_DEFAULT_DELEGATES for :builtin"),
                "tensorflow (converter)": tf.__version__,
                "ai_edge_litert": str(getattr(ai_edge_litert, "__version__", "?"))}

    def api_label(self, api: str, rank: int) -> str:
        if api in FORWARD[1:]:
            return f"conv{rank}d_transpose:{api.split(':', 1)[1]}"
        return gradient_label(f"conv{rank}d_transpose", api)

    def probes(self) -> list[ProbeCall]:
        def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            if layout != "channels-last":
                raise ValueError("TRANSPOSE_CONV takes channels-last (N, H, W, C) data only")
            wk = np.transpose(w, (2, 3, 0, 1))  # naive: (A, B, kH, kW) -> (kH, kW, A, B)
            out_sp = [(n - 1) * s + k for n, s, k in zip(x.shape[2:], stride, w.shape[2:])]
            y, _ = lr_calls.litert_run(
                np.moveaxis(x, 1, -1).astype(np.float64), wk.astype(np.float64), None, dtype="float32",
                output_shape=[x.shape[0], *out_sp, wk.shape[2]], strides=list(stride), padding="VALID",
                dilations=[1, 1], fp16_weights=False, threads=THREADS)
            return np.moveaxis(y, -1, 1)
        return [ProbeCall("conv_transpose", ("in/out swap", "channels-last"), call)]

    # -- which checks exist and which the native API can express ---------------------------------

    def applies(self, case: Case, api: str) -> bool:
        return gradient_applies(case, api)

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        if gradient_quantity(api):
            return NO_GRADIENT
        if api == "conv_transpose:fp16_weights" and dtype != "float16":
            return FP16_DTYPE.format(dtype=dtype)
        if case.groups != 1:
            return NO_GROUPS.replace("{n}", str(case.rank))
        word, _, why = lr_padding.padding_for(case)
        if word is None:
            return why
        if case.expected_error:
            return None  # asked as given: LiteRT (or its converter) is the one to refuse
        seen = self._converter_version() == SEEN_ON
        if seen and api != "conv_transpose:fp16_weights" and dtype in REFUSED_DTYPE:
            return REFUSED_DTYPE[dtype].format(n=case.rank if case.rank != 1 else 2, v2="V2" if case.rank == 3 else "")
        if seen and case.rank in (1, 2) and any(d != 1 for d in case.dilation):
            return REFUSED_DILATION.format(d=list(case.dilation))
        if any(op >= s for op, s in zip(case.output_padding, case.stride)):
            return ("output_padding >= stride: TFLite takes output_padding only through output_shape, which "
                    "must map back onto the input (ceil division by the stride: 'unused_out_height != "
                    "SizeOfDimension(input, ...)')")
        return None

    @staticmethod
    def _converter_version() -> str:
        """The installed TensorFlow's version (the converter), as imported by ``_import``."""
        import tensorflow as tf

        return str(tf.__version__)

    # -- the native call -------------------------------------------------------------------------

    def _kwargs(self, case: Case, api: str, dtype: str) -> dict[str, Any]:
        """The keyword arguments of calls.py's ``litert_run``: plain literals, a pure function of
        the case, the column and the dtype. Invalid cases get their hyper-parameters as given."""
        word, spatial, _ = lr_padding.padding_for(case)
        fp16 = api == "conv_transpose:fp16_weights"
        c_out = int(case.weight.shape[1]) * int(case.groups) if len(case.weight.shape) > 1 else 0
        return {"dtype": "float32" if fp16 else dtype,
                "output_shape": [int(case.input.shape[0]), *(spatial or []), c_out],
                "strides": [int(s) for s in case.stride], "padding": word,
                "dilations": [int(d) for d in case.dilation], "fp16_weights": fp16, "threads": THREADS,
                "op_resolver": RESOLVERS.get(api, "AUTO")}

    def _native_call(self, case: Case, api: str, kwargs: dict[str, Any], has_bias: bool) -> NativeCall:
        rank = len(case.input.shape) - 2
        _, _, mapping = lr_padding.padding_for(case)
        perm = [*range(2, len(case.weight.shape)), 1, 0]
        fp16 = bool(kwargs["fp16_weights"])
        return NativeCall(
            function=(f"tf.lite.TFLiteConverter.from_concrete_functions(tf.function(tf.nn.conv{rank}d_transpose"
                      f"{' + tf.nn.bias_add' if has_bias else ''}))"
                      f"{' [Optimize.DEFAULT, supported_types=[float16]]' if fp16 else ''}"
                      f" -> ai_edge_litert.interpreter.Interpreter({kwargs['op_resolver']}).invoke"),
            input_layout=_LAYOUT.get(rank, "?"), weight_layout="(*K, C_out, C_in)",
            output_layout=_LAYOUT.get(rank, "?"), weight_transform=f"permute {tuple(perm)}; no flip",
            weight_permutation=perm, weight_flip=False,
            padding_mapping=f"{mapping}; output_shape = {kwargs['output_shape']}",
            arguments={**{k: kwargs[k] for k in ("output_shape", "strides", "padding", "dilations")},
                       "bias": "tf.nn.bias_add" if has_bias else None, "placed_on": "cpu (interpreter)",
                       "dtype": kwargs["dtype"], "call": "litert_run", "call_kwargs": dict(kwargs)},
            precision={"model dtype": kwargs["dtype"], "fp16_weights": fp16, "num_threads": kwargs["threads"],
                       "op_resolver": kwargs["op_resolver"]})

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        if gradient_quantity(api):
            raise ValueError(f"{api!r}: {NO_GRADIENT}")
        if device != "cpu":
            raise ValueError(f"{self.name} runs on the CPU only, not on {device!r}")
        kwargs = self._kwargs(case, api, dtype)
        call = self._native_call(case, api, kwargs, b is not None)
        perm = call.weight_permutation or []
        try:
            y, facts = lr_calls.litert_run(np.moveaxis(x, 1, -1), np.transpose(w, perm), b, **kwargs)
        except Exception as exc:
            notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("refused by: ")]
            call.arguments["refused_by"] = notes[-1][len("refused by: "):] if notes else None
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["converted_ops"] = facts["ops"]
        call.precision.update({"execution_plan": facts["execution_plan"], "input dtype": facts["input_dtype"],
                               **_versions()})
        res = np.moveaxis(np.asarray(y, dtype=np.float64), -1, 1)
        native = str(facts["dtype"])
        compute = native if api == "conv_transpose:fp16_weights" and native != dtype else None
        return RunOutput(res, native, call, placed_on="cpu", compute_dtype=compute)

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The one-op model's conversion and run, described without making it (a pure function of the case)."""
        if gradient_quantity(api):
            return None
        return self._native_call(case, api, self._kwargs(case, api, dtype), case.bias is not None)

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded model converted and run as recorded: repro.py."""
        from convt_conformance.adapters.litert.repro import forward_source

        return forward_source(native_call)
