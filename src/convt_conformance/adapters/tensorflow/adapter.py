"""TensorFlow adapter: ``tf.nn.conv{1,2,3}d_transpose``.

Native convention: channels-last input ``(N, *S, C_in)``, filter ``(*K, C_out, C_in)``
(the forward conv's ``(*K, in, out)`` seen from the gradient), NO spatial flip, the output
size given explicitly by ``output_shape``. Translation from the canonical convention:

- input/output: move channels last / back first (layout only);
- weight: permute ``(C_in, C_out/g, *K) -> (*K, C_out/g, C_in)``; no flip;
- padding: rank 2 takes explicit ``[[0,0],[b,e],[b,e],[0,0]]``; ranks 1 and 3 take only
  ``'VALID'`` (all pads zero) or ``'SAME'`` (when the canonical pads equal SAME's resolution
  for that output size); anything else is unsupported;
- output_padding: folded into ``output_shape`` (the output-size rule); TF can only express
  ``output_padding < stride`` this way.

Gradient apis (``<api>:grad_input`` / ``:grad_weight`` / ``:grad_bias``): ``tf.GradientTape``
around the same call (+ ``bias_add``), ``output_gradients`` = the cotangent channels-last; the
filter gradient is permuted back by the inverse of the forward permutation (no flip).

The native calls are convt_conformance/adapters/tensorflow/calls.py's (the reproducers embed their
source); this module translates to and from them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.path_subsets import split_api
from convt_conformance.adapters.tensorflow import calls as tf_calls
from convt_conformance.adapters.tensorflow import paths as tensorflow_paths
from convt_conformance.adapters.tensorflow.calls import WRT
from convt_conformance.adapters.tensorflow.paths import device_name, placed_kind
from convt_conformance.model.apis import gradient_applies, gradient_label, gradient_quantity, with_gradients

if TYPE_CHECKING:
    from convt_conformance.loading.cases import Case

# TF maps nearly all GPU memory into the first process that touches the GPU; the suite runs one
# process per xdist worker, so each must grow its allocation instead (set before TF is imported;
# an explicit setting in the environment wins).
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

_LAYOUT = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def onednn_custom_ops() -> bool:
    """Whether TensorFlow runs its oneDNN custom ops (``_MklNative*`` kernels) in this process:
    TF_ENABLE_ONEDNN_OPTS, else TF's own default, which is on for x86 CPUs with AVX512_VNNI,
    AVX512_BF16, AVX_VNNI or AMX and off elsewhere (TF asked, not guessed; TF is imported)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def tensorflow_facts() -> list[str]:
    """TF's facts for known disagreements' ``when:`` (convt_conformance/model/env_facts.py); none before TF
    is imported (by ``configure``)."""
    return ["tensorflow.onednn_custom_ops"] if "tensorflow" in sys.modules and onednn_custom_ops() else []


def same_pads(in_size: int, out_size: int, k: int, s: int, d: int) -> tuple[int, int] | None:
    """The (begin, end) pads TF's SAME resolves to for a forward conv of ``out_size`` -> ``in_size``."""
    if -(-out_size // s) != in_size:
        return None
    total = max((in_size - 1) * s + d * (k - 1) + 1 - out_size, 0)
    return total // 2, total - total // 2


# --- string padding (README "String padding"): the case's word passed as TF's own string ---
def string_padding(case: Case) -> tuple[str, str] | None:
    """``('VALID'|'SAME', mapping)`` when the case's padding_mode has a TF string with the same
    meaning (convt_conformance/model/string_padding.py), else None (the canonical pads are mapped instead).

    ``valid`` -> 'VALID' with ``output_shape`` (n-1)*s + k_eff + op; ``same``/``same_upper`` without
    output_padding -> 'SAME' with ``output_shape`` n*s. TF has no output_padding: under SAME the
    output size alone fixes TF's crop (total k_eff - s), so ``same`` with output_padding and
    ``same_lower`` (no TF word) fall back to the canonical pads."""
    mode = case.padding_mode
    if mode == "valid":
        return "VALID", "padding='VALID' (the case's `valid`); output_padding folded into output_shape"
    if mode in ("same", "same_upper") and not any(case.mode_output_padding or ()):
        return "SAME", f"padding='SAME' (the case's `{mode}`); output_shape = in * stride"
    return None


# the native name of each gradient quantity's target (tf_calls.conv_transpose's ``wrt``)


class TensorflowAdapter(Adapter):
    name = "tensorflow"
    module = "tensorflow"
    distributions = ("tensorflow-cpu", "tensorflow")  # CPU wheel, or the GPU-capable one
    # the forward call, its gradients (":grad_input", ...) and execution paths ("@xla", "@nchw")
    apis = (*with_gradients(("conv_transpose",)), *tensorflow_paths.PATH_APIS)
    order = 20
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    # Messages with which TF itself refuses a valid configuration it does not implement.

    @classmethod
    def process_environment(cls) -> dict[str, str]:
        """TensorFlow's C++ log quiet but for errors (its start-up banner on every process's stderr)."""
        return {"TF_CPP_MIN_LOG_LEVEL": "2"}

    def _import(self) -> None:
        import tensorflow  # noqa: F401

    def probes(self) -> list[ProbeCall]:
        def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
            wk = np.transpose(w, (2, 3, 0, 1))  # naive: (A, B, kH, kW) -> (kH, kW, A, B)
            out_sp = [(n - 1) * s + k for n, s, k in zip(x.shape[2:], stride, w.shape[2:])]
            last = layout == "channels-last"
            y, _ = tf_calls.conv_transpose(
                np.moveaxis(x, 1, -1) if last else x, wk, dtype=str(x.dtype), device="/CPU:0",
                output_shape=[x.shape[0], *out_sp, wk.shape[2]] if last else [x.shape[0], wk.shape[2], *out_sp],
                strides=list(stride), padding="VALID", dilations=[1, 1], data_format="NHWC" if last else "NCHW")
            return np.moveaxis(y, -1, 1) if last else y
        return [ProbeCall("conv2d_transpose", ("in/out swap", "channels-last"), call)]

    def devices(self) -> list[str]:
        import tensorflow as tf

        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        import tensorflow as tf

        if precision == "strict":
            tf.config.experimental.enable_tensor_float_32_execution(False)
        # TF's default soft placement silently runs an op on the CPU when the GPU has no kernel for
        # it; a "gpu" result must come from the GPU, so placement is hard (and checked in run).
        tf.config.set_soft_device_placement(False)
        return {"tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled(),
                "soft_device_placement": tf.config.get_soft_device_placement(),
                "TF_FORCE_GPU_ALLOW_GROWTH": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
                # oneDNN custom ops: TF_ENABLE_ONEDNN_OPTS, else TF's default, which depends on the CPU
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TF's default)"),
                "onednn_custom_ops": onednn_custom_ops()}

    def facts(self) -> list[str]:
        return tensorflow_facts()

    def applies(self, case: Case, api: str) -> bool:
        # gradients of invalid / bias-free cases mean nothing; which cases a path column runs
        # on is the run profile's choice (convt_conformance/loading/profiles.yaml, `within`)
        return gradient_applies(case, api)

    def api_label(self, api: str, rank: int) -> str:
        path = split_api(api)[1]
        if path:
            return f"conv{rank}d_transpose@{path}"
        return gradient_label(f"conv{rank}d_transpose", api)

    @staticmethod
    def native_name(rank: int) -> str:
        return f"tf.nn.conv{rank}d_transpose"

    def _padding(self, case: Case) -> tuple[str | list[list[int]], str] | tuple[None, str]:
        g = case.geometry
        native = string_padding(case) if case.padding_mode else None
        if native is not None:
            return native
        if case.rank == 2:
            return [[0, 0], *[[int(v) for v in p] for p in g.padding], [0, 0]], "explicit [[0,0],[b,e],[b,e],[0,0]]"
        if all(p == (0, 0) for p in g.padding):
            return "VALID", "'VALID' (all pads zero)"
        out = g.out_spatial
        if all(same_pads(n, o, k, s, d) == p for n, o, k, s, d, p in
               zip(g.in_spatial, out, g.kernel, g.stride, g.dilation, g.padding)):
            return "SAME", "'SAME' (canonical pads equal SAME's resolution)"
        return None, (f"tf.nn.conv{case.rank}d_transpose takes only 'VALID' or 'SAME' padding; "
                      f"pads {[list(p) for p in g.padding]} are neither")

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        why = tensorflow_paths.path_supports(case, api, device, dtype) if "@" in api else None
        if why:
            return why
        if case.expected_error:
            # Only what the API cannot even be asked (a call TF refuses for its argument's form says
            # nothing about the invalid rule): no grouped 3-D form; ranks 1 and 3 take only
            # 'VALID'/'SAME', so other pads (negative ones included) cannot be passed.
            if case.rank == 3 and case.groups > 1:
                return ("tf.nn.conv3d_transpose has no grouped form: Conv3DBackpropInputV2 requires the "
                        "filter's in_channels to equal the input's channels")
            if case.rank in (1, 3) and len(case.padding) == case.rank:
                pad, why = self._padding(case)
                return why if pad is None else None
            return None
        if case.rank not in (1, 2, 3):
            return f"spatial rank {case.rank} has no native API"
        if case.rank == 3 and case.groups > 1:
            return ("tf.nn.conv3d_transpose has no grouped form: Conv3DBackpropInputV2 requires the "
                    "filter's in_channels to equal the input's channels")
        pad, why = self._padding(case)
        if pad is None:
            return why
        if any(op >= s for op, s in zip(case.output_padding, case.stride)):
            return ("output_padding >= stride: TF expresses output_padding only through "
                    "output_shape, which must satisfy ceil-division by stride")
        return None

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        if "@" in api:  # execution paths (XLA, channels-first)
            return tensorflow_paths.run_path(self, case, api, device, dtype, x, w, b)
        if gradient_quantity(api):
            return self._run_gradient(case, api, device, dtype, x, w, b, cotangent)
        call = self._forward_call(case, device, dtype, x.shape, w.shape, b is not None)
        perm, kwargs = call.weight_permutation, call.arguments["call_kwargs"]
        try:  # the call that failed is recorded (convt_conformance/checking/check.py)
            y, placed_on = tf_calls.conv_transpose(np.moveaxis(x, 1, -1), np.transpose(w, perm), b, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = placed_on
        res = np.moveaxis(y.astype(np.float64), -1, 1)
        return RunOutput(res, str(y.dtype), call, placed_on=placed_kind(placed_on))

    def _forward_call(self, case: Case, device: str, dtype: str, x_shape: tuple[int, ...],
                      w_shape: tuple[int, ...], with_bias: bool) -> NativeCall:
        """The eager forward call on an input of canonical shape ``x_shape`` (channels first) and a
        weight of canonical shape ``w_shape`` (``(C_in, C_out/groups, *K)``): channels moved last,
        the weight permuted to ``(*K, C_out/groups, C_in)`` (no flip), the canonical padding as
        TF's (explicit pairs, 'SAME' or 'VALID'), output_padding folded into ``output_shape``;
        ``arguments["call_kwargs"]`` are calls.py ``conv_transpose``'s keyword arguments."""
        import tensorflow as tf

        rank = len(x_shape) - 2
        perm = [*range(2, len(w_shape)), 1, 0]
        pad, mapping = self._padding(case)
        if pad is None:  # rank 2 only (supports() refuses ranks 1, 3): explicit pairs
            pad = [[0, 0], *[[int(v) for v in p] for p in case.padding], [0, 0]]
        out_shape = [int(x_shape[0]), *map(int, case.geometry.out_spatial), int(w_shape[1] * case.groups)] \
            if len(x_shape) == len(w_shape) else [int(x_shape[0]), int(w_shape[1])]
        devname = device_name(device)
        kwargs: dict[str, Any] = {"dtype": dtype, "device": devname, "output_shape": out_shape,
                                  "strides": [int(s) for s in case.stride], "padding": pad,
                                  "dilations": [int(d) for d in case.dilation]}
        return NativeCall(
            function=self.native_name(rank), input_layout=_LAYOUT.get(rank, "?"),
            weight_layout="(*K, C_out/groups, C_in)", output_layout=_LAYOUT.get(rank, "?"),
            weight_transform=f"permute {tuple(perm)}; no flip", weight_permutation=perm,
            weight_flip=False,
            padding_mapping=f"{mapping}; output_padding folded into output_shape",
            arguments={"output_shape": out_shape, "strides": list(case.stride), "padding": pad,
                       "dilations": list(case.dilation), "bias": "tf.nn.bias_add" if with_bias else None,
                       "device": devname, "placed_on": None, "call": "conv_transpose", "call_kwargs": kwargs},
            precision={"tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled()},
        )

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The forward call of ``api`` (eager, ``@xla`` or ``@nchw``), described without making it
        (a pure function of the case: the same description :meth:`run` records), for a known crash
        no sibling check survives; None for a gradient column."""
        if gradient_quantity(api):
            return None
        shapes = (case.input.shape, case.weight.shape, case.bias is not None)  # the tensors' shapes are the spec's
        if "@" in api:
            return tensorflow_paths.path_call(self, case, api, device, dtype, *shapes)
        return self._forward_call(case, device, dtype, *shapes)

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded eager / ``@xla`` / ``@nchw`` call (channels moved last, the weight permuted
        as recorded, ``bias_add``): convt_conformance/adapters/tensorflow/repro.py."""
        from convt_conformance.adapters.tensorflow.repro import forward_source

        return forward_source(native_call)

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """``tf.GradientTape`` around the recorded call: convt_conformance/adapters/tensorflow/repro.py."""
        from convt_conformance.adapters.tensorflow.repro import gradient_source

        return gradient_source(native_call, quantity)

    def _run_gradient(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
                      b: np.ndarray | None, g: np.ndarray | None) -> RunOutput:
        """``tf.GradientTape`` around the same native call (+ ``tf.nn.bias_add``):
        ``tape.gradient(y, [target], output_gradients=g_native)`` with ``g`` moved channels-last
        (calls.py ``conv_transpose`` with ``wrt``). Back to canonical: grad_input channels first;
        grad_weight through the inverse of the forward's permutation (no flip); grad_bias as is.
        TF's own refusals (e.g. grouped filter gradients on CPU) surface as exceptions matched by
        the ``unsupported`` refusals of its rejections.yaml."""
        import tensorflow as tf

        quantity = gradient_quantity(api)
        if quantity is None:
            raise ValueError(f"{api!r} is not a gradient api")
        if g is None:
            raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
        rank = x.ndim - 2
        perm = [*range(2, w.ndim), 1, 0]
        inverse = [int(i) for i in np.argsort(perm)]
        pad, mapping = self._padding(case)
        out_shape = [int(x.shape[0]), *map(int, case.geometry.out_spatial), int(w.shape[1] * case.groups)]
        devname = device_name(device)
        what = {"grad_input": "input (N, *S, C_in)", "grad_weight": "filter (*K, C_out/groups, C_in)",
                "grad_bias": "bias (C_out,)"}[quantity]
        back = {"grad_input": "move channels first", "grad_weight": f"permute {tuple(inverse)} (inverse of "
                f"{tuple(perm)}); no flip", "grad_bias": "identity"}[quantity]
        kwargs: dict[str, Any] = {"dtype": dtype, "device": devname, "output_shape": out_shape,
                                  "strides": [int(s) for s in case.stride], "padding": pad,
                                  "dilations": [int(d) for d in case.dilation], "wrt": WRT[quantity]}
        call = NativeCall(
            function=f"tf.GradientTape: tape.gradient({self.native_name(rank)}(...)"
                     f"{' + tf.nn.bias_add' if b is not None else ''}, [{quantity[5:]}], output_gradients=g)",
            input_layout=_LAYOUT.get(rank, "?"), weight_layout="(*K, C_out/groups, C_in)",
            output_layout=_LAYOUT.get(rank, "?"), weight_transform=f"permute {tuple(perm)}; no flip",
            weight_permutation=perm, weight_flip=False,
            padding_mapping=f"{mapping}; output_padding folded into output_shape",
            arguments={"output_shape": out_shape, "strides": list(case.stride), "padding": pad,
                       "dilations": list(case.dilation), "bias": "tf.nn.bias_add" if b is not None else None,
                       "device": devname, "placed_on": None, "method": "tf.GradientTape",
                       "differentiated": what, "gradient_to_canonical": back,
                       "cotangent_layout": _LAYOUT.get(rank, "?"), "call": "conv_transpose", "call_kwargs": kwargs},
            precision={"tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled()},
        )
        try:  # the call that failed is recorded (convt_conformance/checking/check.py)
            native, placed_on = tf_calls.conv_transpose(np.moveaxis(x, 1, -1), np.transpose(w, perm), b,
                                                        np.moveaxis(g, 1, -1), **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        call.arguments["placed_on"] = placed_on
        res = native.astype(np.float64)
        if quantity == "grad_input":
            res = np.moveaxis(res, -1, 1)
        elif quantity == "grad_weight":
            res = np.transpose(res, inverse)
        return RunOutput(res, str(native.dtype), call, placed_on=placed_kind(placed_on))
