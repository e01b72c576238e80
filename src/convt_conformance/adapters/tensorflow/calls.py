"""TensorFlow's native calls, each written once: the adapter (adapter.py, paths.py) runs these
functions, and a reproducer (repro.py) embeds their source text and calls them with the recorded
keyword arguments written as literals. This module imports only TensorFlow and NumPy; every
function imports TensorFlow itself, so its source runs on its own.

The translation from the canonical convention (channels moved last, the weight permuted, the
padding mapped) is the adapter's; these functions take the arrays as TensorFlow takes them.
"""

import numpy as np  # no `from __future__ import annotations`: annotations evaluate as in a script

#: the gradient quantities and the argument each differentiates (``wrt=``)
WRT = {"grad_input": "input", "grad_weight": "weight", "grad_bias": "bias"}

CALLS = ("conv_transpose",)


def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, g: np.ndarray | None = None, *,
                   dtype: str, device: str, output_shape: list[int], strides: list[int],
                   padding: str | list[list[int]], dilations: list[int], data_format: str | None = None,
                   jit_compile: bool = False, wrt: str | None = None) -> tuple[np.ndarray, str]:
    """``tf.nn.conv{n}d_transpose(x, w, output_shape, strides=, padding=, dilations=[, data_format=])``
    plus ``tf.nn.bias_add(y, b)`` when ``b`` is given, on ``device`` (``'/CPU:0'``, ``'/GPU:0'``)
    with the arrays as ``tf.constant(..., dtype=dtype)``; ``n`` is ``x.ndim - 2``.

    Convention: ``x`` channels-last ``(N, *S, C_in)`` (``data_format`` None: TF's default), or
    as ``data_format`` says (``'NCHW'`` etc.: channels-first, the bias too); ``w`` TF's filter
    ``(*K, C_out/groups, C_in)``, not flipped; ``padding`` TF's own: ``'VALID'``, ``'SAME'``
    or explicit ``[begin, end]`` pairs per axis of the layout (zero for batch and channels),
    the forward conv's padding cut from the output; ``output_shape`` the whole output's shape
    (any output_padding folded in). ``jit_compile``: the call (and the bias) inside
    ``tf.function(jit_compile=True)`` (XLA; one function per signature, kept on this function,
    so each is traced once).

    ``wrt`` (``'input'``, ``'weight'``, ``'bias'``), with the cotangent ``g`` in the output's
    layout: ``tf.GradientTape`` around the same call, ``tape.gradient(y, [target],
    output_gradients=g)``. Returns (the output or that gradient as TF returns it, in NumPy;
    the device TF placed it on)."""
    import tensorflow as tf

    conv = getattr(tf.nn, f"conv{x.ndim - 2}d_transpose")
    tdt = getattr(tf, dtype)
    layout = {} if data_format is None else {"data_format": data_format}
    pad = padding if isinstance(padding, str) else [list(p) for p in padding]

    def call(tx: tf.Tensor, tw: tf.Tensor, *tb: tf.Tensor) -> tf.Tensor:
        y = conv(tx, tw, list(output_shape), strides=list(strides), padding=pad, dilations=list(dilations),
                 **layout)
        return tf.nn.bias_add(y, tb[0], **layout) if tb else y

    run = call
    if jit_compile:
        compiled = conv_transpose.__dict__.setdefault("compiled", {})
        key = repr((x.shape, w.shape, b is not None, dtype, device, output_shape, strides, pad, dilations,
                    data_format))
        if key not in compiled:
            if len(compiled) >= 2048:
                compiled.pop(next(iter(compiled)))
            compiled[key] = tf.function(call, jit_compile=True)
        run = compiled[key]
    with tf.device(device):
        tx = tf.constant(x, dtype=tdt)
        tw = tf.constant(w, dtype=tdt)
        tb = [] if b is None else [tf.constant(b, dtype=tdt)]
        if wrt is None:
            y = run(tx, tw, *tb)
            return y.numpy(), y.device
        target = {"input": tx, "weight": tw, "bias": tb[0] if tb else None}[wrt]
        tg = tf.constant(g, dtype=tdt)
        with tf.GradientTape() as tape:
            tape.watch(target)
            y = run(tx, tw, *tb)
        (grad,) = tape.gradient(y, [target], output_gradients=tg)
        return grad.numpy(), grad.device
