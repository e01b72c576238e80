"""Reproducer call sources for the tensorflow adapter (``conformance repro``; see Adapter.repro_call).

Convention (convt_conformance/adapters/tensorflow/adapter.py): channels-last input and output (``@nchw``:
channels-first with ``data_format``), filter ``(*K, C_out/groups, C_in)`` = the canonical weight
permuted by the recorded ``weight_permutation``, no flip; ``padding`` as recorded (explicit
``[[0,0],[b,e],...,[0,0]]`` pairs or 'VALID'/'SAME'), ``output_padding`` folded into the recorded
``output_shape``; bias by ``tf.nn.bias_add``. Covered: the eager call, ``@xla``
(``tf.function(jit_compile=True)``), ``@nchw`` and the ``tf.GradientTape`` gradients. Only a
recorded ``function`` of the exact form the adapter writes is accepted; arguments go in as literals.
"""

from __future__ import annotations

import re

_FORWARD = re.compile(r"tf\.nn\.conv([123])d_transpose")
_XLA = re.compile(r"tf\.function\(tf\.nn\.conv([123])d_transpose( \+ tf\.nn\.bias_add)?, jit_compile=True\)")
_NCHW = re.compile(r"tf\.nn\.conv([123])d_transpose\(data_format='(NCW|NCHW|NCDHW)'\)")
_GRADIENT = re.compile(r"tf\.GradientTape: tape\.gradient\(tf\.nn\.conv([123])d_transpose\(\.\.\.\)"
                       r"( \+ tf\.nn\.bias_add)?, \[(input|weight|bias)\], output_gradients=g\)")


def _setup(native_call: dict) -> list[str]:
    tf32 = bool((native_call.get("precision") or {}).get("tensor_float_32_execution", False))
    return [
        "import os",
        "",
        "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # quiet TF's startup log, as the suite",
        "import tensorflow as tf",
        "",
        f"tf.config.experimental.enable_tensor_float_32_execution({tf32!r})  # as recorded",
        "tf.config.set_soft_device_placement(False)  # as the suite: no silent CPU fallback",
        "tdt = getattr(tf, DTYPE)",
    ]


def _call(rank: str, a: dict, tx: str = "tx", extra: str = "") -> str:
    return (f"tf.nn.conv{rank}d_transpose({tx}, tw, {a['output_shape']!r}, strides={a['strides']!r}, "
            f"padding={a['padding']!r},\n        dilations={a['dilations']!r}{extra})")


def forward_source(native_call: dict) -> str | None:
    """The recorded eager, ``@xla`` or ``@nchw`` call; output moved back channels-first."""
    fn = native_call.get("function", "")
    a = native_call.get("arguments") or {}
    perm = native_call.get("weight_permutation")
    path = a.get("path")
    pattern = {None: _FORWARD, "xla": _XLA, "nchw": _NCHW}.get(path, None)
    m = pattern.fullmatch(fn) if pattern is not None else None
    if m is None or perm is None:
        return None
    rank = m[1]
    lines = _setup(native_call) + [
        "with tf.device('/GPU:0' if DEVICE == 'gpu' else '/CPU:0'):",
        f"    tw = tf.constant(np.transpose(w, {list(perm)!r}), dtype=tdt)",
    ]
    if path == "nchw":
        layout = m[2]
        lines += ["    tx = tf.constant(x, dtype=tdt)",
                  f"    y = {_call(rank, a, extra=f', data_format={layout!r}')}",
                  "    if b is not None:",
                  f"        y = tf.nn.bias_add(y, tf.constant(b, dtype=tdt), data_format={layout!r})",
                  "native_dtype = y.dtype.name",
                  "out = y.numpy().astype(np.float64)"]
        return "\n".join(lines)
    lines.append("    tx = tf.constant(np.moveaxis(x, 1, -1), dtype=tdt)")
    if path == "xla":
        lines += ["    @tf.function(jit_compile=True)  # XLA compiles the graph (one trace, as the adapter)",
                  "    def call(tx, tw, *tb):",
                  f"        y = {_call(rank, a)}",
                  "        return tf.nn.bias_add(y, tb[0]) if tb else y",
                  "    y = call(tx, tw) if b is None else call(tx, tw, tf.constant(b, dtype=tdt))"]
    else:
        lines += [f"    y = {_call(rank, a)}",
                  "    if b is not None:",
                  "        y = tf.nn.bias_add(y, tf.constant(b, dtype=tdt))"]
    lines += ["native_dtype = y.dtype.name", "out = np.moveaxis(y.numpy().astype(np.float64), -1, 1)"]
    return "\n".join(lines)


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """``tape.gradient(y, [target], output_gradients=G channels-last)`` around the recorded call
    (+ bias_add); back to canonical: grad_input channels first, grad_weight through the inverse of
    the forward permutation (no flip), grad_bias as is."""
    m = _GRADIENT.fullmatch(native_call.get("function", ""))
    a = native_call.get("arguments") or {}
    perm = native_call.get("weight_permutation")
    if not m or perm is None or m[3] != quantity[5:]:
        return None
    target = {"input": "tx", "weight": "tw", "bias": "tb"}[m[3]]
    back = {"input": "np.moveaxis(native, -1, 1)",
            "weight": f"np.transpose(native, {[int(i) for i in sorted(range(len(perm)), key=perm.__getitem__)]!r})",
            "bias": "native"}[m[3]]
    return "\n".join(_setup(native_call) + [
        "with tf.device('/GPU:0' if DEVICE == 'gpu' else '/CPU:0'):",
        "    tx = tf.constant(np.moveaxis(x, 1, -1), dtype=tdt)",
        f"    tw = tf.constant(np.transpose(w, {list(perm)!r}), dtype=tdt)",
        "    tb = tf.constant(b, dtype=tdt) if b is not None else None",
        "    tg = tf.constant(np.moveaxis(G, 1, -1), dtype=tdt)  # the cotangent channels-last",
        "    with tf.GradientTape() as tape:",
        f"        tape.watch({target})",
        f"        y = {_call(m[1], a)}",
        "        if tb is not None:",
        "            y = tf.nn.bias_add(y, tb)",
        f"    (grad,) = tape.gradient(y, [{target}], output_gradients=tg)",
        "native_dtype = grad.dtype.name",
        "native = grad.numpy().astype(np.float64)",
        f"out = {back}",
    ])
