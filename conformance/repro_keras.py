"""Reproducer call sources for the keras adapter (``conformance repro``; see Adapter.repro_call).

Keras fixes its backend at import: the script's prelude (module level, before anything imports
keras) sets ``KERAS_BACKEND`` to the recorded backend, hides GPUs (the suite's Keras children run
with ``CUDA_VISIBLE_DEVICES=""``) and sets the backend's precision flags as adapters/keras_worker.py
does. Convention (adapters/keras_worker.py): channels_last input and output (``:channels_first``
layer column: channels_first), kernel ``(*K, C_out, C_in)`` = the canonical weight permuted by the
recorded ``weight_permutation``, no flip; ``padding`` ('valid'/'same'), ``output_padding`` and
``dilation_rate`` as recorded; bias by ``keras.ops.add`` (ops) or the layer's own (set_weights).
Forward columns only: gradient reproducers for Keras are to come with its gradient columns
(``Adapter.repro_gradient_call``).
"""

from __future__ import annotations

import re

_FUNCTION = re.compile(r"(keras\.ops\.conv_transpose|keras\.layers\.Conv([123])DTranspose) "
                       r"\(KERAS_BACKEND=(jax|torch|tensorflow|numpy)\)")


def _backend(native_call: dict) -> str | None:
    m = _FUNCTION.fullmatch(native_call.get("function", ""))
    return m[3] if m else None


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


def forward_source(native_call: dict) -> str | None:
    """The recorded ``keras.ops.conv_transpose`` or ``keras.layers.Conv{n}DTranspose`` call."""
    m = _FUNCTION.fullmatch(native_call.get("function", ""))
    a = native_call.get("arguments") or {}
    perm = native_call.get("weight_permutation")
    if m is None or perm is None or not all(k in a for k in ("strides", "padding", "output_padding", "dilation_rate")):
        return None
    cf = a.get("data_format") == "channels_first"
    kw = {k: (tuple(a[k]) if isinstance(a[k], list) and k != "output_padding" else a[k])
          for k in ("strides", "padding", "output_padding", "dilation_rate")}
    lines = [
        "import keras",
        "",
        f"print(f'keras {{keras.__version__}}, backend {{keras.backend.backend()}}', '(recorded: keras', "
        f"{str(a.get('keras'))!r} + ')')",
        f"xn = ({'x' if cf else 'np.moveaxis(x, 1, -1)'}).astype(DTYPE)  # {'channels_first' if cf else 'channels_last'}",
        f"kernel = np.transpose(w, {list(perm)!r}).astype(DTYPE)  # (*K, C_out, C_in), no flip",
        f"kw = {kw!r}",
    ]
    if m[1] == "keras.ops.conv_transpose":
        lines += ["y = keras.ops.conv_transpose(keras.ops.convert_to_tensor(xn, dtype=DTYPE),",
                  "                             keras.ops.convert_to_tensor(kernel, dtype=DTYPE),",
                  "                             data_format='channels_last', **kw)",
                  "if b is not None:  # channels_last: the bias broadcasts over the last axis",
                  "    y = keras.ops.add(y, keras.ops.convert_to_tensor(b.astype(DTYPE), dtype=DTYPE))"]
    else:
        lines += [f"layer = {m[1]}(filters=int(w.shape[1]), kernel_size=tuple(w.shape[2:]), use_bias=b is not None,",
                  f"    data_format={'channels_first' if cf else 'channels_last'!r}, dtype=DTYPE, **kw)",
                  "layer.build(xn.shape)",
                  "layer.set_weights([kernel] + ([b.astype(DTYPE)] if b is not None else []))",
                  "y = layer(keras.ops.convert_to_tensor(xn, dtype=DTYPE))"]
    lines += ["out = np.asarray(keras.ops.convert_to_numpy(y))",
              "native_dtype, out = str(out.dtype), out.astype(np.float64)"]
    if not cf:
        lines.append("out = np.moveaxis(out, -1, 1)")
    return "\n".join(lines)
