"""PaddlePaddle adapter: ``paddle.nn.functional.conv{1,2,3}d_transpose`` and the layers
``paddle.nn.Conv{1,2,3}DTranspose``, on the CPU.

Native convention (Paddle's documentation of these APIs): input ``(N, C_in, *S)`` for the
channels-first ``data_format`` (``NCL``, ``NCHW``, ``NCDHW``), ``(N, *S, C_in)`` for the
channels-last one (``NLC``, ``NHWC``, ``NDHWC``); weight ``(C_in, C_out/groups, *K)`` in both,
applied without a flip; padding ints (symmetric) or per-axis ``(begin, end)`` pairs cut from the
full output, or ``'SAME'`` / ``'VALID'``; ``output_padding`` added at the far end of each axis, or
instead an ``output_size``. So the translation is the identity (channels-last: the input moved,
the weight not).

Columns (``api`` -> label for rank 2):

- ``conv_transpose`` -> ``conv2d_transpose``: NCHW, explicit padding (padding.py), output_padding;
- ``conv_transpose:output_size`` -> ``conv2d_transpose:output_size``: the case's output size as
  ``output_size`` (no output_padding: Paddle takes one or the other), explicit padding;
- ``conv_transpose:padding_algorithm`` -> ``conv2d_transpose:padding_algorithm``: the case's
  padding word as Paddle's string (``'SAME'`` / ``'VALID'``), output_padding as written;
- ``conv_transpose:channels_last`` -> ``conv2d_transpose:channels_last``: ``data_format='NHWC'``;
- ``ConvTranspose`` -> ``Conv2DTranspose`` and ``ConvTranspose:channels_last``: the layer, its
  weight and bias set with ``set_value`` after ``.to(dtype=...)``;
- gradient columns ``<api>:grad_input|grad_weight|grad_bias`` of ``conv_transpose`` and
  ``ConvTranspose``: ``paddle.grad([y], [target], grad_outputs=[g])`` of the same call.

dtypes: every call is made in the dtype under test; Paddle's CPU kernels of these ops take float32
and float64 and refuse float16 and bfloat16 ("The kernel with key (CPU, ...) of kernel
`conv2d_transpose` is not registered"): `unsupported` in Paddle's words (rejections.yaml).

The native calls are convt_conformance/adapters/paddle/calls.py's functions; the adapter records
which (``arguments["call"]``) with what (``arguments["call_kwargs"]``): the reproducer (repro.py)
embeds the same function.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import Adapter, NativeCall, ProbeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.paddle import calls as pd_calls
from convt_conformance.adapters.paddle import padding as pd_padding
from convt_conformance.model.apis import (
    forward_api,
    gradient_applies,
    gradient_label,
    gradient_quantity,
    with_gradients,
)

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

BASE = ("conv_transpose", "ConvTranspose")
FORWARD = ("conv_transpose", "conv_transpose:output_size", "conv_transpose:padding_algorithm",
           "conv_transpose:channels_last", "ConvTranspose", "ConvTranspose:channels_last")
#: Paddle's data_format names per spatial rank: (channels-first, channels-last)
FORMATS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
THREADS = 1  # Paddle's CPU math library threads a check (the run gives every worker its share of the CPUs)
#: environment a run sets before Paddle is imported: glog's INFO/WARNING lines off
ENVIRONMENT = {"GLOG_minloglevel": "2"}
DEEPBIND_NOTE = "not loaded"  # how libpaddle was opened (load_paddle)


def load_paddle() -> Any:
    """Import Paddle once, quietly, on the CPU: glog's INFO/WARNING lines off (``ENVIRONMENT``),
    the "No ccache found" import warning of paddle.utils.cpp_extension ignored, Paddle's own C++
    signal handlers off (they print a "FatalError" summary and exit, where the run's crash records
    need Python's faulthandler), ``paddle.set_device("cpu")``.

    Where TensorFlow is loaded already in the process, libpaddle is opened with ``RTLD_DEEPBIND``:
    otherwise its protobuf calls bind to TensorFlow's protobuf (loaded into the global scope) and
    the import of paddle 3.3.1 after tensorflow 2.21 ends in a segmentation fault
    (``RepeatedPtrFieldBase::AddOutOfLineHelper`` in libphi_core.so, in libpaddle's static
    initialisers). ``DEEPBIND_NOTE`` says whether that happened (configure records it)."""
    global DEEPBIND_NOTE
    if "paddle" in sys.modules:
        return sys.modules["paddle"]
    for k, v in ENVIRONMENT.items():
        os.environ.setdefault(k, v)
    import warnings

    deepbind = "tensorflow" in sys.modules and hasattr(os, "RTLD_DEEPBIND")
    flags = sys.getdlopenflags()
    try:
        if deepbind:
            sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            import paddle
    finally:
        sys.setdlopenflags(flags)
    DEEPBIND_NOTE = "RTLD_DEEPBIND (tensorflow was loaded first)" if deepbind else "default"
    paddle.disable_signal_handler()
    paddle.set_device("cpu")
    return paddle


def _parse(api: str) -> tuple[str, str]:
    """(base, form) of a forward column: base ``conv_transpose`` | ``ConvTranspose``, form
    ``explicit`` | ``output_size`` | ``padding_algorithm`` | ``channels_last``."""
    base, _, form = api.partition(":")
    return base, form or "explicit"


def data_format(rank: int, channels_last: bool) -> str:
    """Paddle's ``data_format`` for a spatial rank (an invalid case's other rank: the 2-D names)."""
    first, last = FORMATS.get(rank, FORMATS[2])
    return last if channels_last else first


class PaddleAdapter(Adapter):
    name = "paddle"
    module = "paddle"
    distributions = ("paddlepaddle", "paddlepaddle-gpu")
    apis = (*FORWARD, *with_gradients(BASE)[len(BASE):])
    order = 70
    fork_isolation = True  # a fork after its import is safe (tests/frameworks/test_fork_isolation.py)
    gpu_capable = False  # the CPU wheel (paddlepaddle); the adapter places every tensor on the CPU

    def _import(self) -> None:
        load_paddle()

    @classmethod
    def process_environment(cls) -> dict[str, str]:
        """``GLOG_minloglevel=2``: Paddle's glog INFO/WARNING lines off (read at its import)."""
        return dict(ENVIRONMENT)

    def devices(self) -> list[str]:
        """The CPU only: the adapter places every tensor with ``paddle.CPUPlace()``."""
        return ["cpu"]

    def configure(self, precision: str) -> dict[str, Any]:
        """Paddle on the CPU, ``THREADS`` math-library threads (the same for ``strict`` and
        ``default``: Paddle's CPU conv_transpose has no reduced-precision mode); the oneDNN flag
        (off by default: Paddle's own im2col/col2im + BLAS kernels run) is recorded."""
        paddle = load_paddle()
        paddle.set_device("cpu")
        paddle.base.core.set_num_threads(THREADS)
        flags = paddle.get_flags(["FLAGS_use_mkldnn", "FLAGS_use_onednn"])
        return {"device": str(paddle.get_device()), "num_threads": THREADS, **flags,
                "with_mkl": str(getattr(paddle.version, "with_mkl", "?")), "libpaddle_dlopen": DEEPBIND_NOTE,
                **{k: os.environ.get(k) for k in ENVIRONMENT}}

    def facts(self) -> list[str]:
        """``paddle.onednn`` where Paddle's oneDNN kernels are switched on (``FLAGS_use_onednn``)."""
        if "paddle" not in sys.modules:
            return []
        import paddle

        return ["paddle.onednn"] if paddle.get_flags(["FLAGS_use_onednn"]).get("FLAGS_use_onednn") else []

    def probes(self) -> list[ProbeCall]:
        def call_for(fmt: str) -> Any:
            def call(x: np.ndarray, w: np.ndarray, layout: str, stride: tuple[int, int]) -> np.ndarray:
                if (layout == "channels-last") != pd_calls.channels_last(fmt):
                    raise ValueError(f"the {fmt} column takes {fmt} data only")
                return pd_calls.conv_transpose(
                    x.astype(np.float64), w.astype(np.float64), None, stride=list(stride), padding=[0, 0],
                    output_padding=[0, 0], output_size=None, groups=1, dilation=[1, 1], data_format=fmt,
                    dtype="float64")[0]
            return call
        return [ProbeCall("conv2d_transpose", ("identity", "channels-first"), call_for("NCHW")),
                ProbeCall("conv2d_transpose:channels_last", ("identity", "channels-last"), call_for("NHWC"))]

    # -- which checks exist and which the native API can express ---------------------------------

    def api_label(self, api: str, rank: int) -> str:
        """``conv_transpose[:form]`` -> ``conv{rank}d_transpose[:form]``, ``ConvTranspose[:form]`` ->
        ``Conv{rank}DTranspose[:form]`` (Paddle's names; the gradient suffix kept)."""
        base, form = _parse(forward_api(api))
        name = f"conv{rank}d_transpose" if base == "conv_transpose" else f"Conv{rank}DTranspose"
        return gradient_label(name if form == "explicit" else f"{name}:{form}", api)

    @staticmethod
    def native_name(base: str, rank: int) -> str:
        """The Paddle function or layer a base column calls for a spatial rank."""
        return (f"paddle.nn.functional.conv{rank}d_transpose" if base == "conv_transpose"
                else f"paddle.nn.Conv{rank}DTranspose")

    def applies(self, case: Case, api: str) -> bool:
        """Gradients: valid cases (grad_bias: with a bias); ``:output_size`` and
        ``:padding_algorithm``: valid cases; every other forward column: every case."""
        # output_size and the padding strings are other ways to say a valid case's geometry; the
        # invalid cases (Paddle's validation) are the explicit and channels-last columns'
        if gradient_quantity(api) is None and _parse(api)[1] in ("output_size", "padding_algorithm"):
            return not case.expected_error
        return gradient_applies(case, api)

    def supports(self, case: Case, api: str, device: str, dtype: str) -> str | None:
        """Why a column cannot express the case (None: it can): a spatial rank without an API, a
        weight or bias the layer cannot hold, a padding that is no Paddle padding string. The
        dtypes are Paddle's to refuse (rejections.yaml)."""
        base, form = _parse(forward_api(api))
        if case.rank not in (1, 2, 3):
            return None if case.expected_error else f"spatial rank {case.rank} has no native API"
        if base == "ConvTranspose" and case.expected_error:
            why = self._layer_cannot_take(case)
            if why:
                return why
        if form == "padding_algorithm":
            word, why = pd_padding.padding_algorithm_for(case)
            return why if word is None else None
        return None

    @staticmethod
    def _layer_cannot_take(case: Case) -> str | None:
        """paddle.nn.Conv{n}DTranspose creates its weight (in_channels, out_channels/groups, *K) and
        bias (out_channels,): a weight of another C_in or a bias of another length cannot be set
        into it (set_value would refuse it, which is no rejection by the layer)."""
        if len(case.weight.shape) > 1 and case.weight.shape[0] != case.in_channels:
            return (f"paddle.nn.Conv{case.rank}DTranspose creates its weight with C_in = in_channels "
                    f"({case.in_channels}): a weight with C_in {case.weight.shape[0]} cannot be given to it")
        if case.bias is not None and case.bias.shape != (case.out_channels,):
            return (f"paddle.nn.Conv{case.rank}DTranspose creates its bias of shape (out_channels,) = "
                    f"({case.out_channels},): a bias of shape {list(case.bias.shape)} cannot be given to it")
        return None

    # -- the native call -------------------------------------------------------------------------

    def _kwargs(self, case: Case, api: str, dtype: str) -> tuple[dict[str, Any], str]:
        """The keyword arguments of the calls.py function for this check (plain literals, a pure
        function of the case, the column and the dtype) and the padding mapping in words."""
        base, form = _parse(forward_api(api))
        last = form == "channels_last"
        fmt = data_format(len(case.input.shape) - 2, last)
        padding, mapping = pd_padding.explicit_padding(case, last)
        output_padding: list[int] | None = [int(p) for p in case.output_padding]
        output_size: list[int] | None = None
        if form == "padding_algorithm":
            word, mapping = pd_padding.padding_algorithm_for(case)
            padding = word
            output_padding = [int(p) for p in (case.mode_output_padding or case.output_padding)]
        elif form == "output_size":
            output_size = [int(o) for o in case.geometry.out_spatial]
            output_padding = None
            mapping += f"; output_size={output_size} (the case's output size) instead of output_padding"
        if form != "output_size":
            mapping += "; output_padding as is" if form != "padding_algorithm" else ""
        kwargs: dict[str, Any] = {"stride": [int(s) for s in case.stride], "padding": padding,
                                  "output_padding": output_padding, "groups": int(case.groups),
                                  "dilation": [int(d) for d in case.dilation], "data_format": fmt, "dtype": dtype}
        if base == "conv_transpose":
            kwargs["output_size"] = output_size
        return kwargs, mapping

    def _native_call(self, case: Case, api: str, kwargs: dict[str, Any], mapping: str, has_bias: bool,
                     name: str, extra: dict[str, Any] | None = None) -> NativeCall:
        base, _ = _parse(forward_api(api))
        rank = len(case.input.shape) - 2
        fmt = kwargs["data_format"]
        layout = fmt.replace("L", "W")
        return NativeCall(
            function=self.native_name(base, rank), input_layout=layout, weight_layout="(C_in, C_out/groups, *K)",
            output_layout=layout,
            weight_transform="identity (no permutation, no flip)" + (
                f"; the input moved to {fmt} (the weight keeps its layout)" if pd_calls.channels_last(fmt) else ""),
            weight_permutation=None, weight_flip=False, padding_mapping=mapping,
            arguments={**{k: kwargs.get(k) for k in ("stride", "padding", "output_padding", "output_size", "groups",
                                                     "dilation", "data_format")},
                       "bias": has_bias, "placed_on": None, "dtype": kwargs["dtype"], **(extra or {}),
                       "call": name, "call_kwargs": dict(kwargs)},
            precision={"num_threads": THREADS})

    def run(self, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
            b: np.ndarray | None, cotangent: np.ndarray | None = None) -> RunOutput:
        """The column's call of calls.py on the canonical arrays (the identity translation; a
        channels-last column's function moves the channel axis itself), or ``paddle.grad`` of it
        for a gradient column, recorded as a :class:`NativeCall` naming that function and its
        keyword arguments."""
        if device != "cpu":
            raise ValueError(f"{self.name} runs on the CPU only, not on {device!r}")
        quantity = gradient_quantity(api)
        base, _ = _parse(forward_api(api))
        kwargs, mapping = self._kwargs(case, api, dtype)
        extra: dict[str, Any] = {}
        if quantity is not None:
            if cotangent is None:
                raise ValueError(f"case {case.id}: gradient api {api!r} needs a cotangent")
            wrt = quantity.removeprefix("grad_")
            kwargs = {"wrt": wrt, **kwargs}
            name = "conv_transpose_grad" if base == "conv_transpose" else "conv_transpose_layer_grad"
            extra = {"differentiated": wrt if base == "conv_transpose" or wrt == "input" else f"layer.{wrt}",
                     "method": "paddle.grad", "stop_gradient": False,
                     "cotangent_layout": kwargs["data_format"].replace("L", "W")}
        else:
            name = "conv_transpose" if base == "conv_transpose" else "conv_transpose_layer"
        call = self._native_call(case, api, kwargs, mapping, b is not None, name, extra)
        if quantity is not None:
            call.function = f"paddle.grad([{call.function}(...)], [{extra['differentiated']}], grad_outputs=[g])"
        try:
            fn = getattr(pd_calls, name)
            res, facts = fn(x, w, b, cotangent, **kwargs) if quantity is not None else fn(x, w, b, **kwargs)
        except Exception as exc:
            attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
            raise
        place = str(facts["place"])
        call.arguments["placed_on"] = place
        return RunOutput(res, str(facts["dtype"]), call, placed_on="cpu" if "cpu" in place.lower() else place)

    def describe_call(self, case: Case, api: str, device: str, dtype: str) -> NativeCall | None:
        """The forward call, described without making it (a pure function of the case)."""
        if gradient_quantity(api):
            return None
        base, _ = _parse(api)
        kwargs, mapping = self._kwargs(case, api, dtype)
        name = "conv_transpose" if base == "conv_transpose" else "conv_transpose_layer"
        return self._native_call(case, api, kwargs, mapping, case.bias is not None, name)

    def repro_call(self, native_call: dict) -> str | None:
        """The recorded functional or layer call: convt_conformance/adapters/paddle/repro.py."""
        from convt_conformance.adapters.paddle.repro import forward_source

        return forward_source(native_call)

    def repro_gradient_call(self, native_call: dict, quantity: str) -> str | None:
        """``paddle.grad`` of the recorded call: convt_conformance/adapters/paddle/repro.py."""
        from convt_conformance.adapters.paddle.repro import gradient_source

        return gradient_source(native_call, quantity)
