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

import functools
import re

import numpy as np

from convt_conformance.adapters.base import NativeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.path_subsets import split_api

PATH_APIS = ("conv_transpose@xla", "conv_transpose@nchw")
# TF's CPU kernels refuse channels-first transposed convolution
NCHW_REFUSAL = re.compile(r"only supports N(D)?HWC")
_CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def path_supports(case, api: str, device: str, dtype: str) -> str | None:
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


@functools.lru_cache(maxsize=2048)
def xla_function(rank: int, out_shape: tuple, strides: tuple, padding, dilations: tuple, with_bias: bool,
                 signature: tuple):
    """One ``tf.function(jit_compile=True)`` per static signature (``signature``: shapes, dtype,
    device; part of the key only, so that each function is traced once)."""
    import tensorflow as tf

    fn = getattr(tf.nn, f"conv{rank}d_transpose")
    pad = padding if isinstance(padding, str) else [list(p) for p in padding]

    def call(x, w, *b):
        y = fn(x, w, list(out_shape), strides=list(strides), padding=pad, dilations=list(dilations))
        return tf.nn.bias_add(y, b[0]) if with_bias else y
    return tf.function(call, jit_compile=True)


def run_path(adapter, case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
             b: np.ndarray | None) -> RunOutput:
    """Make the native call of ``api`` on canonical float64 arrays (channels-first in and out)."""
    import tensorflow as tf

    _, path = split_api(api)
    rank = x.ndim - 2
    perm = [*range(2, w.ndim), 1, 0]
    tdt = getattr(tf, dtype)
    pad, mapping = adapter._padding(case) if x.ndim == w.ndim else (None, "")
    if pad is None:  # invalid case that no native padding describes: pass explicit anyway
        pad = [[0, 0], *[list(p) for p in case.padding], [0, 0]]
    c_out = int(w.shape[1] * case.groups)
    spatial = list(case.geometry.out_spatial) if x.ndim == w.ndim else []
    devname = "/GPU:0" if device == "gpu" else "/CPU:0"
    fn = getattr(tf.nn, f"conv{rank}d_transpose")
    args: dict = {"strides": list(case.stride), "dilations": list(case.dilation),
                  "bias": "tf.nn.bias_add" if b is not None else None, "device": devname, "path": path}
    if path not in ("xla", "nchw"):
        raise ValueError(f"tensorflow adapter: unknown execution path {path!r} in api {api!r}")
    if path == "xla":
        layout = _CHANNELS_LAST.get(rank, "?")
        out_shape = [int(x.shape[0]), *spatial, c_out]
        function = (f"tf.function(tf.nn.conv{rank}d_transpose{' + tf.nn.bias_add' if b is not None else ''}, "
                    "jit_compile=True)")
        args.update(jit_compile=True)
    else:
        layout = _CHANNELS_FIRST.get(rank, "?")
        out_shape = [int(x.shape[0]), c_out, *spatial]
        if not isinstance(pad, str):  # explicit pairs: the channel pair moves to axis 1
            pad = [pad[0], pad[-1], *pad[1:-1]]
            mapping = mapping.replace("[[0,0],[b,e],[b,e],[0,0]]", "[[0,0],[0,0],[b,e],[b,e]]")
        function = f"tf.nn.conv{rank}d_transpose(data_format={layout!r})"
        args.update(data_format=layout)
    args.update(output_shape=out_shape, padding=pad, placed_on=None)
    call = NativeCall(
        function=function, input_layout=layout, weight_layout="(*K, C_out/groups, C_in)", output_layout=layout,
        weight_transform=f"permute {tuple(perm)}; no flip", weight_permutation=perm, weight_flip=False,
        padding_mapping=f"{mapping}; output_padding folded into output_shape", arguments=args,
        precision={"tensor_float_32_execution": tf.config.experimental.tensor_float_32_execution_enabled()},
    )
    try:  # the call that failed is recorded (convt_conformance/checking/check.py)
        with tf.device(devname):
            tw = tf.constant(np.transpose(w, perm), dtype=tdt)
            if path == "xla":
                tx = tf.constant(np.moveaxis(x, 1, -1), dtype=tdt)
                key_pad = pad if isinstance(pad, str) else tuple(tuple(p) for p in pad)
                sig = (tuple(tx.shape), tuple(tw.shape), dtype, devname)
                f = xla_function(rank, tuple(out_shape), tuple(case.stride), key_pad, tuple(case.dilation),
                                 b is not None, sig)
                y = f(tx, tw, tf.constant(b, dtype=tdt)) if b is not None else f(tx, tw)
                res = np.moveaxis(y.numpy().astype(np.float64), -1, 1)
                args.update(compile_cache_entries=xla_function.cache_info().currsize)
            else:
                tx = tf.constant(x, dtype=tdt)
                y = fn(tx, tw, out_shape, strides=list(case.stride), padding=pad, dilations=list(case.dilation),
                       data_format=layout)
                if b is not None:
                    y = tf.nn.bias_add(y, tf.constant(b, dtype=tdt), data_format=layout)
                res = y.numpy().astype(np.float64)
    except Exception as exc:
        attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
        raise
    args.update(placed_on=y.device)
    placed = re.search(r"device:([A-Z]+):", y.device, re.I)
    return RunOutput(res, y.dtype.name, call, placed_on=placed.group(1).lower() if placed else y.device)

