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
dying process).
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
        from convt_conformance.adapters.tensorflow.adapter import tensorflow_facts

        settings["facts"] = tensorflow_facts()  # the parent's facts() (known disagreements' `when:`)
    import keras

    settings["keras"] = keras.__version__
    settings["backend"] = keras.backend.backend()
    return settings


def _native_inputs(msg: dict):
    """``(x, kernel, bias, kwargs, rank, channels_first)`` in Keras' layouts and the check's dtype:
    input channels_last (channels_first for ``layer_cf``), kernel ``(*K, C_out, C_in)`` (a
    permutation of the canonical ``(C_in, C_out, *K)``, no flip)."""
    x, w, b, dtype, api = msg["x"], msg["w"], msg["b"], msg["dtype"], msg["api"]
    cf = api == "layer_cf"
    # C-contiguous in Keras' layouts, as a Keras user's arrays are (a transposed view would carry the
    # canonical layout's strides into the backend, and torch picks its kernels by memory format)
    xn = np.ascontiguousarray(x if cf else np.moveaxis(x, 1, -1), dtype=dtype)
    kernel = np.ascontiguousarray(np.transpose(w, (*range(2, w.ndim), 1, 0)), dtype=dtype)
    bias = None if b is None else b.astype(dtype)
    kw = dict(strides=tuple(msg["strides"]), padding=msg["padding"], output_padding=msg["output_padding"],
              dilation_rate=tuple(msg["dilation"]))
    return xn, kernel, bias, kw, x.ndim - 2, cf


def _layer(msg: dict, xn: np.ndarray, kernel: np.ndarray, bias, kw: dict, rank: int, cf: bool):
    """``keras.layers.Conv{rank}DTranspose`` built for ``xn`` with its weights set (``set_weights``)."""
    import keras

    w = msg["w"]
    cls = getattr(keras.layers, f"Conv{rank}DTranspose")
    layer = cls(filters=int(w.shape[1]), kernel_size=tuple(w.shape[2:]), use_bias=bias is not None,
                data_format="channels_first" if cf else "channels_last", dtype=msg["dtype"], **kw)
    layer.build(xn.shape)
    layer.set_weights([kernel] + ([bias] if bias is not None else []))
    return layer


def _arguments(kw: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}


def run(msg: dict) -> dict:
    """One native call. ``msg``: canonical float64 ``x`` (N, C_in, *S), ``w`` (C_in, C_out, *K),
    ``b`` or None, ``dtype``, ``api`` ("ops": keras.ops.conv_transpose channels_last; "layer" /
    "layer_cf": keras.layers.Conv{n}DTranspose channels_last / channels_first), ``strides``,
    ``dilation``, ``padding`` ('valid'/'same'), ``output_padding`` (per-axis list or None).
    The kernel goes in Keras' layout ``(*K, C_out, C_in)`` (a permutation, no flip); the output
    comes back float64 channels-first."""
    import keras

    dtype, api = msg["dtype"], msg["api"]
    xn, kernel, bias, kw, rank, cf = _native_inputs(msg)
    if api == "ops":
        # dtype explicit: Keras' numpy backend converts a float64 ndarray to float32 without it
        y = keras.ops.conv_transpose(keras.ops.convert_to_tensor(xn, dtype=dtype),
                                     keras.ops.convert_to_tensor(kernel, dtype=dtype),
                                     data_format="channels_last", **kw)
        if bias is not None:  # channels_last: the bias broadcasts over the last axis
            y = keras.ops.add(y, keras.ops.convert_to_tensor(bias, dtype=dtype))
        function = "keras.ops.conv_transpose"
    else:
        layer = _layer(msg, xn, kernel, bias, kw, rank, cf)
        y = layer(keras.ops.convert_to_tensor(xn, dtype=dtype))
        function = f"keras.layers.Conv{rank}DTranspose"
    out = np.asarray(keras.ops.convert_to_numpy(y))
    native_dtype = str(out.dtype)
    out = out.astype(np.float64)
    return {"array": out if cf else np.moveaxis(out, -1, 1), "native_dtype": native_dtype,
            "function": function, "arguments": _arguments(kw)}


QUANTITIES = ("grad_input", "grad_weight", "grad_bias")
# how :func:`grad` differentiates, per (backend, kind): the record's ``method`` (the parent writes it
# into a failed call's NativeCall too; convt_conformance/adapters/keras/repro.py accepts exactly these)
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


def grad(msg: dict) -> dict:
    """The gradients ``msg["wrt"]`` (a subset of :data:`QUANTITIES`) of the call :func:`run` makes,
    pulled back with the cotangent ``msg["g"]`` (canonical float64 ``(N, C_out, *O)``, moved into the
    output's layout), by the backend's own autodiff (Keras 3 has no backend-agnostic one):

    - torch: ``torch.autograd.grad(y, targets, grad_outputs=g)``; targets ``x`` (``requires_grad``)
      and, for ``ops``, the kernel/bias tensors (``requires_grad``), for the layers the layer's
      ``kernel`` / ``bias`` variables (their ``.value``, torch Parameters);
    - tensorflow: ``tf.GradientTape`` (``x`` and the ops' kernel/bias watched; the layer's variables
      are trainable ``tf.Variable``s, watched by the tape), ``tape.gradient(y, targets,
      output_gradients=g)``;
    - jax: ``jax.vjp`` of ``f(x, kernel, bias)`` for ``ops``; for the layers of
      ``layer.stateless_call(trainable_variables, non_trainable_variables, x)`` (Keras' functional
      form of a layer call under JAX) w.r.t. ``(x, trainable_variables)``; the pullback jitted (as
      Keras' JAX trainer compiles its train step; an eager pullback compiles every primitive
      apart, 2-4x the time);
    - numpy: no autodiff (the parent never asks; refused here too).

    One backward pass returns every requested gradient. Back to canonical layout: the input
    gradient channels first (as the forward output), the kernel gradient through the inverse of the
    kernel permutation ``(*K, C_out, C_in) -> (C_in, C_out, *K)`` (no flip), the bias as is."""
    import keras

    backend = keras.backend.backend()
    dtype, api, wrt = msg["dtype"], msg["api"], list(msg["wrt"])
    xn, kernel, bias, kw, rank, cf = _native_inputs(msg)
    gn = np.ascontiguousarray(msg["g"] if cf else np.moveaxis(msg["g"], 1, -1), dtype=dtype)
    if "grad_bias" in wrt and bias is None:
        raise ValueError("grad_bias asked for a call without a bias")
    ops = api == "ops"

    def forward(x, k, b):  # ops: the adapter's forward call on backend tensors
        y = keras.ops.conv_transpose(x, k, data_format="channels_last", **kw)
        return y if b is None else keras.ops.add(y, b)

    if backend == "torch":
        import torch

        tx = torch.tensor(xn, requires_grad=True)
        if ops:
            tk = torch.tensor(kernel, requires_grad=True)
            tb = None if bias is None else torch.tensor(bias, requires_grad=True)
            y = forward(tx, tk, tb)
            targets = {"grad_input": tx, "grad_weight": tk, "grad_bias": tb}
        else:
            layer = _layer(msg, xn, kernel, bias, kw, rank, cf)
            y = layer(tx)
            targets = {"grad_input": tx, "grad_weight": layer.kernel.value,
                       "grad_bias": layer.bias.value if bias is not None else None}
        got = torch.autograd.grad(y, [targets[q] for q in wrt], grad_outputs=torch.tensor(gn))
        native = [t.detach().numpy() for t in got]
    elif backend == "tensorflow":
        import tensorflow as tf

        tx = tf.constant(xn)
        layer = None if ops else _layer(msg, xn, kernel, bias, kw, rank, cf)
        with tf.GradientTape() as tape:
            tape.watch(tx)
            if ops:
                tk = tf.constant(kernel)
                tb = None if bias is None else tf.constant(bias)
                tape.watch(tk)
                if tb is not None:
                    tape.watch(tb)
                y = forward(tx, tk, tb)
                targets = {"grad_input": tx, "grad_weight": tk, "grad_bias": tb}
            else:
                assert layer is not None  # built above for a layer api
                y = layer(tx)
                targets = {"grad_input": tx, "grad_weight": layer.kernel.value,
                           "grad_bias": layer.bias.value if bias is not None else None}
        got = tape.gradient(y, [targets[q] for q in wrt], output_gradients=tf.constant(gn))
        if any(t is None for t in got):
            raise RuntimeError(f"tf.GradientTape returned None for {[q for q, t in zip(wrt, got) if t is None]}")
        native = [t.numpy() for t in got]
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        jx = jnp.asarray(xn)
        if ops:
            args = [jx, jnp.asarray(kernel)] + ([jnp.asarray(bias)] if bias is not None else [])

            def pullback(g, *args):
                return jax.vjp(lambda x, k, *b: forward(x, k, b[0] if b else None), *args)[1](g)

            cot = jax.jit(pullback)(jnp.asarray(gn), *args)
            by = {"grad_input": cot[0], "grad_weight": cot[1], "grad_bias": cot[2] if bias is not None else None}
        else:
            layer = _layer(msg, xn, kernel, bias, kw, rank, cf)
            trainable = [v.value for v in layer.trainable_variables]
            frozen = [v.value for v in layer.non_trainable_variables]
            def layer_pullback(g, x, tv):
                return jax.vjp(lambda x, tv: layer.stateless_call(tv, frozen, x)[0], x, tv)[1](g)

            gx, gtv = jax.jit(layer_pullback)(jnp.asarray(gn), jx, trainable)
            index = {id(v): i for i, v in enumerate(layer.trainable_variables)}
            by = {"grad_input": gx, "grad_weight": gtv[index[id(layer.kernel)]],
                  "grad_bias": gtv[index[id(layer.bias)]] if bias is not None else None}
        native = [np.asarray(by[q]) for q in wrt]
    else:
        raise NotImplementedError(f"Keras' {backend} backend has no automatic differentiation")
    inverse = tuple(int(i) for i in np.argsort((*range(2, kernel.ndim), 1, 0)))
    out: dict = {}
    for q, a in zip(wrt, native):
        a64 = np.asarray(a).astype(np.float64)
        if q == "grad_input":
            a64 = a64 if cf else np.moveaxis(a64, -1, 1)
        elif q == "grad_weight":
            a64 = np.transpose(a64, inverse)
        out[q] = {"array": a64, "native_dtype": str(np.asarray(a).dtype), "native_shape": list(np.shape(a))}
    function = "keras.ops.conv_transpose" if ops else f"keras.layers.Conv{rank}DTranspose"
    return {"gradients": out, "function": function, "method": gradient_method(backend, ops),
            "arguments": _arguments(kw), "kernel_inverse_permutation": list(inverse)}


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
