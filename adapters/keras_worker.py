"""One Keras backend in its own process: ``python -m adapters.keras_worker`` with ``KERAS_BACKEND``
set by the parent (adapters/keras_adapter.py). Keras fixes its backend at import, so each backend
lives in one long-lived child; the parent never imports keras.

Protocol (stdin -> stdout, both binary): each message is an 8-byte little-endian length and a
pickle of a dict. The first reply (unasked) is ``{"ok": True, "hello": {...}}`` with the backend,
versions and precision settings; then per request ``{"op": ...}`` one reply ``{"ok": True, ...}``
or ``{"ok": False, "error": "Type: message"}``. Anything Keras or a backend prints goes to stderr
(fd 1 is pointed at fd 2 before the first import), so it cannot corrupt the protocol.

Ops: ``run`` (one native Keras call, see :func:`run`), ``sleep`` and ``exit`` (for the crash
isolation tests: a hang and a dying process).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

import numpy as np


def send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("parent closed the pipe")
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def configure(backend: str, precision: str) -> dict:
    """Strict precision the way the other adapters set it, before keras is imported: JAX (also
    under Keras' numpy backend, whose conv_transpose is jax.lax's) x64 and highest matmul
    precision; torch and TF without TF32."""
    settings: dict[str, Any] = {"KERAS_BACKEND": backend, "precision": precision}
    if backend in ("jax", "numpy"):
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 cases need it
        if precision == "strict":
            jax.config.update("jax_default_matmul_precision", "highest")
        settings["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
    elif backend == "torch":
        import torch

        if precision == "strict":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.set_float32_matmul_precision("highest")
        settings["torch.backends.cudnn.allow_tf32"] = torch.backends.cudnn.allow_tf32
    elif backend == "tensorflow":
        import tensorflow as tf

        if precision == "strict":
            tf.config.experimental.enable_tensor_float_32_execution(False)
        settings["tensor_float_32_execution"] = tf.config.experimental.tensor_float_32_execution_enabled()
    import keras

    settings["keras"] = keras.__version__
    settings["backend"] = keras.backend.backend()
    return settings


def run(msg: dict) -> dict:
    """One native call. ``msg``: canonical float64 ``x`` (N, C_in, *S), ``w`` (C_in, C_out, *K),
    ``b`` or None, ``dtype``, ``api`` ("ops": keras.ops.conv_transpose channels_last; "layer" /
    "layer_cf": keras.layers.Conv{n}DTranspose channels_last / channels_first), ``strides``,
    ``dilation``, ``padding`` ('valid'/'same'), ``output_padding`` (per-axis list or None).
    The kernel goes in Keras' layout ``(*K, C_out, C_in)`` (a permutation, no flip); the output
    comes back float64 channels-first."""
    import keras

    x, w, b, dtype, api = msg["x"], msg["w"], msg["b"], msg["dtype"], msg["api"]
    rank = x.ndim - 2
    cf = api == "layer_cf"
    xn = (x if cf else np.moveaxis(x, 1, -1)).astype(dtype)
    kernel = np.transpose(w, (*range(2, w.ndim), 1, 0)).astype(dtype)
    kw = dict(strides=tuple(msg["strides"]), padding=msg["padding"], output_padding=msg["output_padding"],
              dilation_rate=tuple(msg["dilation"]))
    if api == "ops":
        # dtype explicit: Keras' numpy backend converts a float64 ndarray to float32 without it
        y = keras.ops.conv_transpose(keras.ops.convert_to_tensor(xn, dtype=dtype),
                                     keras.ops.convert_to_tensor(kernel, dtype=dtype),
                                     data_format="channels_last", **kw)
        if b is not None:  # channels_last: the bias broadcasts over the last axis
            y = keras.ops.add(y, keras.ops.convert_to_tensor(b.astype(dtype), dtype=dtype))
        function = "keras.ops.conv_transpose"
    else:
        cls = getattr(keras.layers, f"Conv{rank}DTranspose")
        layer = cls(filters=int(w.shape[1]), kernel_size=tuple(w.shape[2:]), use_bias=b is not None,
                    data_format="channels_first" if cf else "channels_last", dtype=dtype, **kw)
        layer.build(xn.shape)
        layer.set_weights([kernel] + ([b.astype(dtype)] if b is not None else []))
        y = layer(keras.ops.convert_to_tensor(xn, dtype=dtype))
        function = f"keras.layers.Conv{rank}DTranspose"
    out = np.asarray(keras.ops.convert_to_numpy(y))
    native_dtype = str(out.dtype)
    out = out.astype(np.float64)
    return {"array": out if cf else np.moveaxis(out, -1, 1), "native_dtype": native_dtype,
            "function": function, "arguments": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}}


def main() -> None:
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints from keras/backends -> stderr
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer
    backend = os.environ.get("KERAS_BACKEND", "")
    try:
        hello = configure(backend, os.environ.get("CONFORMANCE_KERAS_PRECISION", "strict"))
        send(proto_out, {"ok": True, "hello": hello})
    except Exception as exc:
        send(proto_out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    while True:
        try:
            msg = receive(proto_in)
        except EOFError:
            return
        try:
            if msg["op"] == "run":
                reply = {"ok": True, **run(msg)}
            elif msg["op"] == "sleep":
                time.sleep(float(msg["seconds"]))
                reply = {"ok": True}
            elif msg["op"] == "exit":
                os._exit(int(msg.get("code", 3)))
            else:
                reply = {"ok": False, "error": f"ValueError: unknown op {msg['op']!r}"}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": "".join(traceback.format_exception(exc)[-3:])[-2000:]}
        send(proto_out, reply)


if __name__ == "__main__":
    main()
