"""Reproducer call sources for the keras adapter (``conformance repro``; see Adapter.repro_call).

Keras fixes its backend at import: the script's prelude (module level, before anything imports
keras) sets ``KERAS_BACKEND`` to the recorded backend, hides GPUs (the suite's Keras children run
with ``CUDA_VISIBLE_DEVICES=""``) and sets the backend's precision flags as convt_conformance/adapters/keras/worker.py
does. Convention (convt_conformance/adapters/keras/worker.py): channels_last input and output (``:channels_first``
layer column: channels_first), kernel ``(*K, C_out, C_in)`` = the canonical weight permuted by the
recorded ``weight_permutation``, no flip; ``padding`` ('valid'/'same'), ``output_padding`` and
``dilation_rate`` as recorded; bias by ``keras.ops.add`` (ops) or the layer's own (set_weights).
The arrays go in C-contiguous in Keras' layouts, as the worker passes them.

Gradient columns (:func:`gradient_source`): the worker's ``grad`` request re-enacted (adapters/
keras_worker.py): ``torch.autograd.grad`` (x, the ops' kernel/bias tensors or the layer's
``kernel``/``bias`` variables ``requires_grad``), ``tf.GradientTape`` (x and the ops' tensors
watched, the layer's trainable variables) or the jitted ``jax.vjp`` (of ``layer.stateless_call``
for the layers), w.r.t. the recorded ``one_backward_pass_for`` set, the cotangent ``G`` moved into
the output's layout; the gradient back to canonical layout (input channels first, the kernel
through the inverse permutation, no flip).
"""

from __future__ import annotations

import re

import numpy as np

from convt_conformance.adapters.keras.worker import QUANTITIES, gradient_method

_FUNCTION = re.compile(r"(keras\.ops\.conv_transpose|keras\.layers\.Conv([123])DTranspose) "
                       r"\(KERAS_BACKEND=(jax|torch|tensorflow|numpy)\)")
_GRADIENT = re.compile(r"(?P<method>.+) around (?P<fn>keras\.ops\.conv_transpose|keras\.layers\.Conv(?P<rank>[123])"
                       r"DTranspose)\(\.\.\.\)(?P<bias> \+ keras\.ops\.add\(bias\))? "
                       r"\(KERAS_BACKEND=(?P<backend>jax|torch|tensorflow)\); this check: (?P<q>grad_\w+)")


def _backend(native_call: dict) -> str | None:
    fn = native_call.get("function", "")
    m = _FUNCTION.fullmatch(fn)
    if m:
        return m[3]
    g = _GRADIENT.fullmatch(fn)
    return g["backend"] if g and g["method"] == gradient_method(g["backend"], "ops" in g["fn"]) else None


def prelude(native_call: dict) -> str:
    """Module-level lines run before keras is imported: the backend and its precision flags."""
    backend = _backend(native_call)
    if backend is None:
        return ""
    lines = ["import os", "",
             f"os.environ['KERAS_BACKEND'] = {backend!r}  # Keras fixes its backend at import",
             "os.environ['CUDA_VISIBLE_DEVICES'] = ''  # as the suite's Keras children: CPU only",
             "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')"]
    if backend in ("jax", "numpy"):  # Keras' numpy backend runs conv_transpose through jax.lax
        lines += ["import jax", "", "jax.config.update('jax_enable_x64', True)",
                  "if PRECISION == 'strict':", "    jax.config.update('jax_default_matmul_precision', 'highest')"]
    elif backend == "torch":
        lines += ["import torch", "", "if PRECISION == 'strict':",
                  "    torch.backends.cuda.matmul.allow_tf32 = False", "    torch.backends.cudnn.allow_tf32 = False",
                  "    torch.set_float32_matmul_precision('highest')"]
    else:
        lines += ["import tensorflow as tf", "", "if PRECISION == 'strict':",
                  "    tf.config.experimental.enable_tensor_float_32_execution(False)"]
    return "\n".join(lines)


_KW = ("strides", "padding", "output_padding", "dilation_rate")


def _common(a: dict, perm: list, cf: bool) -> list[str]:
    """Lines: import keras, print its version, ``xn`` / ``kernel`` (C-contiguous, Keras' layouts,
    as convt_conformance/adapters/keras/worker.py ``_native_inputs``) and ``kw`` (the recorded Keras arguments)."""
    kw = {k: (tuple(a[k]) if isinstance(a[k], list) and k != "output_padding" else a[k]) for k in _KW}
    return [
        "import keras",
        "",
        f"print(f'keras {{keras.__version__}}, backend {{keras.backend.backend()}}', '(recorded: keras', "
        f"{str(a.get('keras'))!r} + ')')",
        f"xn = np.ascontiguousarray({'x' if cf else 'np.moveaxis(x, 1, -1)'}, dtype=DTYPE)  "
        f"# {'channels_first' if cf else 'channels_last'}",
        f"kernel = np.ascontiguousarray(np.transpose(w, {[int(i) for i in perm]!r}), dtype=DTYPE)  "
        "# (*K, C_out, C_in), no flip",
        f"kw = {kw!r}",
    ]


def _layer(fn: str, cf: bool) -> list[str]:
    """Lines building ``layer`` (Conv{n}DTranspose built for ``xn``, weights by set_weights)."""
    return [f"layer = {fn}(filters=int(w.shape[1]), kernel_size=tuple(w.shape[2:]), use_bias=b is not None,",
            f"    data_format={'channels_first' if cf else 'channels_last'!r}, dtype=DTYPE, **kw)",
            "layer.build(xn.shape)",
            "layer.set_weights([kernel] + ([b.astype(DTYPE)] if b is not None else []))"]


def forward_source(native_call: dict) -> str | None:
    """The recorded ``keras.ops.conv_transpose`` or ``keras.layers.Conv{n}DTranspose`` call."""
    m = _FUNCTION.fullmatch(native_call.get("function", ""))
    a = native_call.get("arguments") or {}
    perm = native_call.get("weight_permutation")
    if m is None or perm is None or not all(k in a for k in _KW):
        return None
    cf = a.get("data_format") == "channels_first"
    lines = _common(a, perm, cf)
    if m[1] == "keras.ops.conv_transpose":
        lines += ["y = keras.ops.conv_transpose(keras.ops.convert_to_tensor(xn, dtype=DTYPE),",
                  "                             keras.ops.convert_to_tensor(kernel, dtype=DTYPE),",
                  "                             data_format='channels_last', **kw)",
                  "if b is not None:  # channels_last: the bias broadcasts over the last axis",
                  "    y = keras.ops.add(y, keras.ops.convert_to_tensor(b.astype(DTYPE), dtype=DTYPE))"]
    else:
        lines += _layer(m[1], cf) + ["y = layer(keras.ops.convert_to_tensor(xn, dtype=DTYPE))"]
    lines += ["out = np.asarray(keras.ops.convert_to_numpy(y))",
              "native_dtype, out = str(out.dtype), out.astype(np.float64)"]
    if not cf:
        lines.append("out = np.moveaxis(out, -1, 1)")
    return "\n".join(lines)


_TARGETS = ("targets = {'grad_input': tx, 'grad_weight': layer.kernel.value,",
            "           'grad_bias': layer.bias.value if b is not None else None}")


def _torch(ops: bool, fn: str, cf: bool) -> list[str]:
    lines = ["import torch", "", "tx = torch.tensor(xn, requires_grad=True)"]
    if ops:
        lines += ["tk = torch.tensor(kernel, requires_grad=True)",
                  "tb = None if b is None else torch.tensor(b.astype(DTYPE), requires_grad=True)",
                  "y = forward(tx, tk, tb)",
                  "targets = {'grad_input': tx, 'grad_weight': tk, 'grad_bias': tb}"]
    else:
        lines += _layer(fn, cf) + ["y = layer(tx)", *_TARGETS]
    return lines + ["got = torch.autograd.grad(y, [targets[q] for q in WRT], grad_outputs=torch.tensor(gn))",
                    "native = dict(zip(WRT, [t.detach().numpy() for t in got]))"]


def _tensorflow(ops: bool, fn: str, cf: bool) -> list[str]:
    lines = ["import tensorflow as tf", "", "tx = tf.constant(xn)"]
    if not ops:
        lines += _layer(fn, cf)
    lines += ["with tf.GradientTape() as tape:", "    tape.watch(tx)"]
    if ops:
        lines += ["    tk = tf.constant(kernel)",
                  "    tb = None if b is None else tf.constant(b.astype(DTYPE))",
                  "    tape.watch(tk)",
                  "    if tb is not None:",
                  "        tape.watch(tb)",
                  "    y = forward(tx, tk, tb)",
                  "    targets = {'grad_input': tx, 'grad_weight': tk, 'grad_bias': tb}"]
    else:
        lines += ["    y = layer(tx)", *("    " + t for t in _TARGETS)]
    return lines + [
        "got = tape.gradient(y, [targets[q] for q in WRT], output_gradients=tf.constant(gn))",
        "if any(t is None for t in got):",
        "    raise RuntimeError(f'tf.GradientTape returned None for {[q for q, t in zip(WRT, got) if t is None]}')",
        "native = dict(zip(WRT, [t.numpy() for t in got]))"]


def _jax(ops: bool, fn: str, cf: bool) -> list[str]:
    lines = ["import jax", "import jax.numpy as jnp", "", "jx = jnp.asarray(xn)"]
    if ops:
        lines += ["args = [jx, jnp.asarray(kernel)] + ([jnp.asarray(b.astype(DTYPE))] if b is not None else [])",
                  "",
                  "def pullback(g, *args):",
                  "    return jax.vjp(lambda x, k, *bb: forward(x, k, bb[0] if bb else None), *args)[1](g)",
                  "",
                  "cot = jax.jit(pullback)(jnp.asarray(gn), *args)",
                  "by = {'grad_input': cot[0], 'grad_weight': cot[1], 'grad_bias': cot[2] if b is not None else None}"]
    else:
        lines += _layer(fn, cf) + [
            "trainable = [v.value for v in layer.trainable_variables]",
            "frozen = [v.value for v in layer.non_trainable_variables]",
            "",
            "def pullback(g, x, tv):",
            "    return jax.vjp(lambda x, tv: layer.stateless_call(tv, frozen, x)[0], x, tv)[1](g)",
            "",
            "gx, gtv = jax.jit(pullback)(jnp.asarray(gn), jx, trainable)",
            "index = {id(v): i for i, v in enumerate(layer.trainable_variables)}",
            "by = {'grad_input': gx, 'grad_weight': gtv[index[id(layer.kernel)]],",
            "      'grad_bias': gtv[index[id(layer.bias)]] if b is not None else None}"]
    return lines + ["native = {q: np.asarray(by[q]) for q in WRT}"]


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """The worker's ``grad`` request for the recorded call (module docstring): one backward pass
    for the recorded ``one_backward_pass_for`` gradients; ``out`` the ``quantity``'s, canonical."""
    g = _GRADIENT.fullmatch(native_call.get("function", ""))
    a = native_call.get("arguments") or {}
    perm = native_call.get("weight_permutation")
    wrt = a.get("one_backward_pass_for") or [quantity]
    ops = g is not None and g["fn"] == "keras.ops.conv_transpose"
    if (g is None or g["q"] != quantity or g["method"] != gradient_method(g["backend"], ops) or perm is None
            or not all(k in a for k in _KW) or not isinstance(wrt, list) or quantity not in wrt
            or not set(wrt) <= set(QUANTITIES)):
        return None
    cf = a.get("data_format") == "channels_first"
    inverse = [int(i) for i in np.argsort([int(i) for i in perm])]
    body = {"torch": _torch, "tensorflow": _tensorflow, "jax": _jax}[g["backend"]](ops, g["fn"], cf)
    return "\n".join(_common(a, perm, cf) + [
        f"gn = np.ascontiguousarray({'G' if cf else 'np.moveaxis(G, 1, -1)'}, dtype=DTYPE)  # the output's layout",
        f"WRT = {[str(q) for q in wrt]!r}  # one backward pass for these, as recorded",
        "",
        "def forward(x, k, bias):  # ops: keras.ops.conv_transpose (+ keras.ops.add) on backend tensors",
        "    y = keras.ops.conv_transpose(x, k, data_format='channels_last', **kw)",
        "    return y if bias is None else keras.ops.add(y, bias)",
        "",
        *body,
        "grad = native[QUANTITY]",
        "native_dtype, out = str(grad.dtype), np.asarray(grad).astype(np.float64)",
        "if QUANTITY == 'grad_input':",
        f"    out = {'out' if cf else 'np.moveaxis(out, -1, 1)'}  # channels first",
        "elif QUANTITY == 'grad_weight':",
        f"    out = np.transpose(out, {inverse!r})  # (*K, C_out, C_in) -> (C_in, C_out, *K)",
    ])
