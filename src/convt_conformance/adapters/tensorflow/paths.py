"""TensorFlow execution paths: the same ``tf.nn.conv{n}d_transpose`` reached another way.

Columns (API names with an ``@path`` suffix; translation as in tensorflow_adapter.py):

- ``conv_transpose@xla``: the call (and ``tf.nn.bias_add``) inside
  ``tf.function(jit_compile=True)``: XLA compiles the graph instead of eager dispatch to TF's
  own kernels. One tf.function per signature (rank, output_shape, strides, padding,
  dilations, bias, dtype, shapes, device), so each is traced and compiled once.
  Grouped filters cannot even be traced (graph shape inference requires the filter's
  in_channels to equal the input's channels): unsupported.
- ``conv_transpose@nchw``: eager with ``data_format="NCW"/"NCHW"/"NCDHW"`` (input, output and
  bias channels-first; filter as always ``(*K, C_out/g, C_in)``). TF's CPU kernels refuse it
  ("Conv2DCustomBackpropInputOp only supports NHWC"): recorded as ``unsupported`` with that
  message, so a release that adds it shows; on a GPU it is the cuDNN path.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import NativeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.path_subsets import split_api
from convt_conformance.adapters.tensorflow import calls as tf_calls

if TYPE_CHECKING:
    from convt_conformance.adapters.tensorflow.adapter import TensorflowAdapter
    from convt_conformance.loading.cases import Case

PATH_APIS = ("conv_transpose@xla", "conv_transpose@nchw")
# TF's CPU kernels refuse channels-first transposed convolution
_CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def device_name(device: str) -> str:
    """TF's name of the suite's device (``tf.device``)."""
    return "/GPU:0" if device == "gpu" else "/CPU:0"


def placed_kind(tf_device: str) -> str:
    """``cpu`` / ``gpu`` from the device TF reports for a tensor (``.../device:GPU:0``)."""
    placed = re.search(r"device:([A-Z]+):", tf_device, re.I)
    return placed.group(1).lower() if placed else tf_device


def path_supports(case: Case, api: str, device: str, dtype: str) -> str | None:
    """The path-specific reason a case cannot take this path (None: it can)."""
    _, path = split_api(api)
    if path == "xla" and case.groups > 1 and not case.expected_error:
        return ("tf.function graph shape inference of Conv{n}DBackpropInput requires the filter's "
                "in_channels to equal the input's channels (ValueError: Dimensions must be equal): "
                "no grouped form under tf.function").replace("{n}", str(case.rank))
    if path == "nchw" and device == "cpu" and case.expected_error:
        return ("data_format channels-first is refused on CPU for every configuration "
                "(Conv2DCustomBackpropInputOp only supports NHWC): a refusal would say nothing "
                "about the invalid configuration")
    return None


def path_call(adapter: TensorflowAdapter, case: Case, api: str, device: str, dtype: str,
              x_shape: tuple[int, ...], w_shape: tuple[int, ...], with_bias: bool) -> NativeCall:
    """The native call of path ``api`` on an input of canonical shape ``x_shape`` (channels
    first) and a weight of canonical shape ``w_shape``: calls.py ``conv_transpose`` (its keyword
    arguments in ``arguments["call_kwargs"]``) with ``jit_compile=True`` and channels last
    (``@xla``), or a channels-first ``data_format`` (``@nchw``); the weight permuted to
    ``(*K, C_out/groups, C_in)``, no flip."""
    import tensorflow as tf

    _, path = split_api(api)
    rank = len(x_shape) - 2
    perm = [*range(2, len(w_shape)), 1, 0]
    same_rank = len(x_shape) == len(w_shape)
    pad, mapping = adapter._padding(case) if same_rank else (None, "")
    if pad is None:  # invalid case that no native padding describes: pass explicit anyway
        pad = [[0, 0], *[[int(v) for v in p] for p in case.padding], [0, 0]]
    c_out = int(w_shape[1] * case.groups)
    spatial = [int(n) for n in case.geometry.out_spatial] if same_rank else []
    devname = device_name(device)
    args: dict[str, Any] = {"strides": list(case.stride), "dilations": list(case.dilation),
                            "bias": "tf.nn.bias_add" if with_bias else None, "device": devname, "path": path}
    kwargs: dict[str, Any] = {"dtype": dtype, "device": devname, "strides": [int(s) for s in case.stride],
                              "dilations": [int(d) for d in case.dilation]}
    if path not in ("xla", "nchw"):
        raise ValueError(f"tensorflow adapter: unknown execution path {path!r} in api {api!r}")
    if path == "xla":
        layout = _CHANNELS_LAST.get(rank, "?")
        out_shape = [int(x_shape[0]), *spatial, c_out]
        function = (f"tf.function(tf.nn.conv{rank}d_transpose{' + tf.nn.bias_add' if with_bias else ''}, "
                    "jit_compile=True)")
        args.update(jit_compile=True)
        kwargs.update(jit_compile=True)
    else:
        layout = _CHANNELS_FIRST.get(rank, "?")
        out_shape = [int(x_shape[0]), c_out, *spatial]
        if not isinstance(pad, str):  # explicit pairs: the channel pair moves to axis 1
            pad = [pad[0], pad[-1], *pad[1:-1]]
            mapping = mapping.replace("[[0,0],[b,e],[b,e],[0,0]]", "[[0,0],[0,0],[b,e],[b,e]]")
        function = f"tf.nn.conv{rank}d_transpose(data_format={layout!r})"
        args.update(data_format=layout)
        kwargs.update(data_format=layout)
    kwargs.update(output_shape=out_shape, padding=pad)
    args.update(output_shape=out_shape, padding=pad, placed_on=None, call="conv_transpose", call_kwargs=kwargs)
    return NativeCall(
        function=function, input_layout=layout, weight_layout="(*K, C_out/groups, C_in)", output_layout=layout,
        weight_transform=f"permute {tuple(perm)}; no flip", weight_permutation=perm, weight_flip=False,
        padding_mapping=f"{mapping}; output_padding folded into output_shape", arguments=args,
        precision={"tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled()},
    )


def run_path(adapter: TensorflowAdapter, case: Case, api: str, device: str, dtype: str, x: np.ndarray,
             w: np.ndarray, b: np.ndarray | None) -> RunOutput:
    """Make the native call of ``api`` on canonical float64 arrays (channels-first in and out):
    :func:`path_call`'s."""
    call = path_call(adapter, case, api, device, dtype, x.shape, w.shape, b is not None)
    path, perm, args, kwargs = call.arguments["path"], call.weight_permutation, call.arguments, \
        call.arguments["call_kwargs"]
    try:  # the call that failed is recorded (convt_conformance/checking/check.py)
        y, placed_on = tf_calls.conv_transpose(np.moveaxis(x, 1, -1) if path == "xla" else x, np.transpose(w, perm),
                                               b, **kwargs)
    except Exception as exc:
        attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
        raise
    res = y.astype(np.float64)
    if path == "xla":
        res = np.moveaxis(res, -1, 1)
        args.update(compile_cache_entries=len(tf_calls.conv_transpose.__dict__.get("compiled", {})))
    args.update(placed_on=placed_on)
    return RunOutput(res, str(y.dtype), call, placed_on=placed_kind(placed_on))
