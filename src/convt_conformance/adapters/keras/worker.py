"""One Keras backend in its own process: ``python -m convt_conformance.adapters.keras.worker`` with ``KERAS_BACKEND``
set by the parent (convt_conformance/adapters/keras/adapter.py). Keras fixes its backend at import, so each backend
lives in one long-lived child; the parent never imports keras.

Protocol (stdin -> stdout, both binary): each message is an 8-byte little-endian length and a
pickle of a dict. The first reply (unasked) is ``{"ok": True, "hello": {...}}`` with the backend,
versions and precision settings; then per request ``{"op": ...}`` one reply ``{"ok": True, ...}``
or ``{"ok": False, "error": "Type: message"}``. Anything Keras or a backend prints goes to stderr
(fd 1 is pointed at fd 2 before the first import), so it cannot corrupt the protocol.

Ops: ``run`` (one native Keras call, see :func:`run`), ``grad`` (the backend's own autodiff around
that call, see :func:`grad`), ``sleep`` and ``exit`` (for the crash isolation tests: a hang and a
dying process). The calls themselves are convt_conformance/adapters/keras/calls.py's, made with
the keyword arguments the parent sends (``kwargs``, recorded as the call's ``call_kwargs``).
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

from convt_conformance.adapters.keras.calls import conv_transpose


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


def configure(backend: str, precision: str) -> dict[str, Any]:
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
        from convt_conformance.adapters.tensorflow.adapter import tensorflow_facts

        settings["facts"] = tensorflow_facts()  # the parent's facts() (known disagreements' `when:`)
    import keras

    settings["keras"] = keras.__version__
    settings["backend"] = keras.backend.backend()
    return settings


def _native_inputs(msg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(x, kernel, channels_first)``: the canonical float64 ``x`` (N, C_in, *S) and ``w``
    (C_in, C_out, *K) in Keras' layouts: input channels_last (channels_first when ``kwargs``'
    ``data_format`` says so), kernel ``(*K, C_out, C_in)`` (a permutation, no flip)."""
    x, w = msg["x"], msg["w"]
    cf = msg["kwargs"]["data_format"] == "channels_first"
    return (x if cf else np.moveaxis(x, 1, -1)), np.transpose(w, (*range(2, w.ndim), 1, 0)), cf


def run(msg: dict[str, Any]) -> dict[str, Any]:
    """One native call: calls.py ``conv_transpose`` with ``msg["kwargs"]`` (``layer`` False:
    keras.ops.conv_transpose channels_last; True: keras.layers.Conv{n}DTranspose in the
    ``data_format`` given) on ``msg``'s canonical float64 ``x`` (N, C_in, *S), ``w``
    (C_in, C_out, *K) and ``b`` or None moved into Keras' layouts (:func:`_native_inputs`); the
    output comes back float64 channels-first."""
    xn, kernel, cf = _native_inputs(msg)
    (out,) = conv_transpose(xn, kernel, msg["b"], **msg["kwargs"])
    native_dtype = str(out.dtype)
    out = out.astype(np.float64)
    return {"array": out if cf else np.moveaxis(out, -1, 1), "native_dtype": native_dtype}


QUANTITIES = ("grad_input", "grad_weight", "grad_bias")
# each quantity's name in calls.py ``conv_transpose``'s ``wrt``
WRT = {"grad_input": "input", "grad_weight": "weight", "grad_bias": "bias"}
# how calls.py ``conv_transpose`` differentiates, per (backend, kind): the record's ``method`` and
# part of its ``function`` text (the parent writes it into a failed call's NativeCall too)
METHODS = {
    "torch": "torch.autograd.grad(y, targets, grad_outputs=g)",
    "tensorflow": "tf.GradientTape: tape.gradient(y, targets, output_gradients=g)",
    "jax:ops": ("jax.jit(lambda g, x, k, b: jax.vjp(lambda x, k, b: keras.ops.conv_transpose(x, k, ...) + b, "
                "x, k, b)[1](g))"),
    "jax:layer": ("jax.jit(lambda g, x, tv: jax.vjp(lambda x, tv: layer.stateless_call(tv, non_trainable, x)[0], "
                  "x, tv)[1](g)) at tv = layer.trainable_variables"),
}


def gradient_method(backend: str, ops: bool) -> str:
    """The :data:`METHODS` entry of ``backend`` for ``keras.ops.conv_transpose`` (``ops``) or a layer."""
    return METHODS.get(backend, METHODS.get(f"{backend}:{'ops' if ops else 'layer'}", ""))


def grad(msg: dict[str, Any]) -> dict[str, Any]:
    """The gradients ``msg["wrt"]`` (a subset of :data:`QUANTITIES`; ``msg["kwargs"]["wrt"]`` names
    them for calls.py, in the same order) of the call :func:`run` makes, pulled back with the
    cotangent ``msg["g"]`` (canonical float64 ``(N, C_out, *O)``, moved into the output's layout)
    in one backward pass of the backend's own autodiff (calls.py ``conv_transpose`` with ``wrt``;
    :data:`METHODS`). Back to canonical layout: the input gradient channels first (as the forward
    output), the kernel gradient through the inverse of the kernel permutation
    ``(*K, C_out, C_in) -> (C_in, C_out, *K)`` (no flip), the bias as is."""
    xn, kernel, cf = _native_inputs(msg)
    gn = msg["g"] if cf else np.moveaxis(msg["g"], 1, -1)
    wrt = list(msg["wrt"])
    native = conv_transpose(xn, kernel, msg["b"], gn, **msg["kwargs"])
    inverse = tuple(int(i) for i in np.argsort((*range(2, kernel.ndim), 1, 0)))
    out: dict[str, Any] = {}
    for q, a in zip(wrt, native, strict=True):
        a64 = np.asarray(a).astype(np.float64)
        if q == "grad_input":
            a64 = a64 if cf else np.moveaxis(a64, -1, 1)
        elif q == "grad_weight":
            a64 = np.transpose(a64, inverse)
        out[q] = {"array": a64, "native_dtype": str(np.asarray(a).dtype), "native_shape": list(np.shape(a))}
    return {"gradients": out}


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
            elif msg["op"] == "grad":
                reply = {"ok": True, **grad(msg)}
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
