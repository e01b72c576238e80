"""Keras' native calls, each written once: the backend's child process (worker.py) runs these
functions for the adapter, and a reproducer (repro.py) embeds their source text and calls them
with the recorded keyword arguments written as literals. This module imports only Keras, its
backend and NumPy; every function imports them itself, so its source runs on its own (in a
process whose ``KERAS_BACKEND`` was set before Keras was first imported).

The translation from the canonical convention (channels moved last, the kernel permuted) is the
adapter's; these functions take the arrays as Keras takes them.
"""

import numpy as np  # no `from __future__ import annotations`: annotations evaluate as in a script

#: the Keras backends the calls run on
BACKENDS = ("jax", "torch", "tensorflow", "numpy")

CALLS = ("conv_transpose",)


def conv_transpose(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None, g: np.ndarray | None = None, *,
                   backend: str, layer: bool, dtype: str, data_format: str, strides: list[int], padding: str,
                   output_padding: list[int] | None, dilation_rate: list[int],
                   wrt: list[str] | None = None) -> tuple[np.ndarray, ...]:
    """``keras.ops.conv_transpose(x, kernel, strides=, padding=, output_padding=, data_format=,
    dilation_rate=)`` plus ``keras.ops.add(y, bias)`` (``layer`` False), or
    ``keras.layers.Conv{n}DTranspose(filters, kernel_size, strides=, padding=, output_padding=,
    dilation_rate=, data_format=, use_bias=, dtype=)`` built for ``x`` with ``set_weights([kernel[,
    bias]])`` and called on it (``layer`` True), on Keras' ``backend`` (checked: Keras fixes it at
    import); the arrays C-contiguous in ``dtype``, as a Keras user's are.

    Convention: ``x`` as ``data_format`` says (``'channels_last'`` ``(N, *S, C_in)``;
    ``'channels_first'`` ``(N, C_in, *S)``, layers only), ``kernel`` Keras' ``(*K, C_out, C_in)``,
    not flipped; ``padding`` ``'valid'``/``'same'`` and ``output_padding`` (one int per axis, or
    None) with Keras' own meaning (keras/src/backend/common/backend_utils.py).

    ``wrt`` (a list of ``'input'``, ``'weight'``, ``'bias'``), with the cotangent ``g`` in the
    output's layout: one backward pass of the backend's own autodiff around the same call
    (Keras 3 has none of its own): torch ``torch.autograd.grad(y, targets, grad_outputs=g)``
    (``x`` and, for ops, the kernel/bias tensors ``requires_grad``; a layer's ``kernel``/``bias``
    variables); tensorflow ``tf.GradientTape`` (``x`` and the ops' tensors watched, a layer's
    trainable variables), ``tape.gradient(y, targets, output_gradients=g)``; jax ``jax.vjp`` of
    the ops call, or of ``layer.stateless_call(trainable, non_trainable, x)`` w.r.t. ``(x,
    trainable)``, the pullback jitted. The numpy backend has no autodiff.

    Returns the output (a one-tuple), or the gradients in ``wrt`` order, as Keras returns them
    in NumPy."""
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"Keras runs the {keras.backend.backend()!r} backend, not {backend!r}: "
                           "set KERAS_BACKEND before keras is first imported")
    # C-contiguous, as a Keras user's arrays are: a transposed view would carry another layout's
    # strides into the backend, and torch picks its kernels by memory format
    xn = np.ascontiguousarray(x, dtype=dtype)
    kn = np.ascontiguousarray(kernel, dtype=dtype)
    bn = None if bias is None else bias.astype(dtype)
    kw = dict(strides=tuple(strides), padding=padding, output_padding=output_padding,
              dilation_rate=tuple(dilation_rate))

    def new_layer() -> keras.layers.Layer:
        cls = getattr(keras.layers, f"Conv{xn.ndim - 2}DTranspose")
        made = cls(filters=int(kn.shape[-2]), kernel_size=tuple(kn.shape[:-2]), use_bias=bn is not None,
                   data_format=data_format, dtype=dtype, **kw)
        made.build(xn.shape)
        made.set_weights([kn] + ([bn] if bn is not None else []))
        return made

    def forward(x: object, k: object, b: object) -> object:  # the ops call on the backend's tensors
        y = keras.ops.conv_transpose(x, k, data_format=data_format, **kw)
        return y if b is None else keras.ops.add(y, b)

    if wrt is None:
        if layer:
            conv = new_layer()
            y = conv(keras.ops.convert_to_tensor(xn, dtype=dtype))
        else:
            # dtype explicit: Keras' numpy backend converts a float64 ndarray to float32 without it
            y = forward(keras.ops.convert_to_tensor(xn, dtype=dtype), keras.ops.convert_to_tensor(kn, dtype=dtype),
                        None if bn is None else keras.ops.convert_to_tensor(bn, dtype=dtype))
        return (np.asarray(keras.ops.convert_to_numpy(y)),)
    gn = np.ascontiguousarray(g, dtype=dtype)
    if "bias" in wrt and bn is None:
        raise ValueError("the bias gradient asked for a call without a bias")
    if backend == "torch":
        import torch

        tx = torch.tensor(xn, requires_grad=True)
        if layer:
            conv = new_layer()
            y = conv(tx)
            targets = {"input": tx, "weight": conv.kernel.value, "bias": conv.bias.value if bn is not None else None}
        else:
            tk = torch.tensor(kn, requires_grad=True)
            tb = None if bn is None else torch.tensor(bn, requires_grad=True)
            y = forward(tx, tk, tb)
            targets = {"input": tx, "weight": tk, "bias": tb}
        got = torch.autograd.grad(y, [targets[q] for q in wrt], grad_outputs=torch.tensor(gn))
        return tuple(t.detach().numpy() for t in got)
    if backend == "tensorflow":
        import tensorflow as tf

        tx = tf.constant(xn)
        conv = new_layer() if layer else None
        with tf.GradientTape() as tape:
            tape.watch(tx)
            if conv is not None:
                y = conv(tx)
                targets = {"input": tx, "weight": conv.kernel.value,
                           "bias": conv.bias.value if bn is not None else None}
            else:
                tk = tf.constant(kn)
                tb = None if bn is None else tf.constant(bn)
                tape.watch(tk)
                if tb is not None:
                    tape.watch(tb)
                y = forward(tx, tk, tb)
                targets = {"input": tx, "weight": tk, "bias": tb}
        got = tape.gradient(y, [targets[q] for q in wrt], output_gradients=tf.constant(gn))
        if any(t is None for t in got):
            raise RuntimeError(f"tf.GradientTape returned None for {[q for q, t in zip(wrt, got) if t is None]}")
        return tuple(t.numpy() for t in got)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        jx = jnp.asarray(xn)
        if layer:
            conv = new_layer()
            trainable = [v.value for v in conv.trainable_variables]
            frozen = [v.value for v in conv.non_trainable_variables]

            def layer_pullback(g: jax.Array, x: jax.Array, tv: list[jax.Array]) -> tuple[jax.Array, list[jax.Array]]:
                return jax.vjp(lambda x, tv: conv.stateless_call(tv, frozen, x)[0], x, tv)[1](g)

            gx, gtv = jax.jit(layer_pullback)(jnp.asarray(gn), jx, trainable)
            index = {id(v): i for i, v in enumerate(conv.trainable_variables)}
            by = {"input": gx, "weight": gtv[index[id(conv.kernel)]],
                  "bias": gtv[index[id(conv.bias)]] if bn is not None else None}
        else:
            args = [jx, jnp.asarray(kn)] + ([jnp.asarray(bn)] if bn is not None else [])

            def pullback(g: jax.Array, *args: jax.Array) -> tuple[jax.Array, ...]:
                return jax.vjp(lambda x, k, *b: forward(x, k, b[0] if b else None), *args)[1](g)

            cot = jax.jit(pullback)(jnp.asarray(gn), *args)
            by = {"input": cot[0], "weight": cot[1], "bias": cot[2] if bn is not None else None}
        return tuple(np.asarray(by[q]) for q in wrt)
    raise NotImplementedError(f"Keras' {backend} backend has no automatic differentiation")
