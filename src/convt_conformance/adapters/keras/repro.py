"""Reproducer call sources for the keras adapter (``conformance repro``; see Adapter.repro_call).

Keras fixes its backend at import: the script's prelude (module level, before anything imports
keras) sets ``KERAS_BACKEND`` to the recorded backend (``call_kwargs["backend"]``, one of Keras'
four), hides GPUs (the suite's Keras children run with ``CUDA_VISIBLE_DEVICES=""``) and sets the
backend's precision flags as convt_conformance/adapters/keras/worker.py does.

The native call is convt_conformance/adapters/keras/calls.py's ``conv_transpose``, the one the
backend's child ran (forward, or one backward pass of the backend's autodiff for the recorded
``wrt``): the record's ``arguments["call"]`` names it, and the script embeds its source text and
calls it with the record's ``arguments["call_kwargs"]`` written as literals
(convt_conformance/adapters/call_source.py), the dtype excepted: that is the script's ``DTYPE``.
A record naming no function of calls.py's ``CALLS``, or holding an argument that is not a plain
literal, gets no source.

Around the call, the worker's translation from the canonical convention: the input (and a
gradient's cotangent ``G``) moved channels-last unless the recorded ``data_format`` is
channels_first, the kernel permuted by the recorded ``weight_permutation`` to ``(*K, C_out,
C_in)`` (no flip); the result moved back (a kernel gradient through the inverse permutation).
"""

from __future__ import annotations

from typing import Any

from convt_conformance.adapters.call_source import call_source, literal
from convt_conformance.adapters.keras import calls
from convt_conformance.adapters.keras.calls import BACKENDS
from convt_conformance.adapters.keras.worker import WRT
from convt_conformance.adapters.tensorflow.repro import permutation


def _kwargs(native_call: dict[str, Any]) -> dict[str, Any] | None:
    """The record's ``call_kwargs`` when they name one of Keras' backends, else None."""
    a = native_call.get("arguments")
    kwargs = a.get("call_kwargs") if isinstance(a, dict) else None
    return kwargs if isinstance(kwargs, dict) and kwargs.get("backend") in BACKENDS else None


def prelude(native_call: dict[str, Any]) -> str:
    """Module-level lines run before keras is imported: the backend and its precision flags."""
    kwargs = _kwargs(native_call)
    if kwargs is None:
        return ""
    backend = str(kwargs["backend"])
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


def _source(native_call: dict[str, Any], gradient: bool) -> tuple[list[str], list[int], bool] | None:
    """(lines defining calls.py's function and calling it as recorded, its result in ``y``, or in
    ``grads`` for a ``gradient``; the kernel permutation; whether the layout is channels_first)."""
    kwargs = _kwargs(native_call)
    perm = permutation(native_call)
    if kwargs is None or perm is None or (kwargs.get("wrt") is not None) != gradient:
        return None
    cf = kwargs.get("data_format") == "channels_first"
    move = "{}" if cf else "np.moveaxis({}, 1, -1)"
    positional = f"{move.format('x')}, np.transpose(w, {literal(perm)}), b{', ' + move.format('G') if gradient else ''}"
    source = call_source(calls, {"call": (native_call.get("arguments") or {}).get("call"),
                                 "call_kwargs": {k: v for k, v in kwargs.items() if k != "dtype"}},
                         positional=f"{positional}, dtype=DTYPE", result="grads" if gradient else "(y,)")
    if source is None:
        return None
    version = str((native_call.get("arguments") or {}).get("keras"))
    return ["import keras", "",
            f"print(f'keras {{keras.__version__}}, backend {{keras.backend.backend()}}', '(recorded: keras', "
            f"{version!r} + ')')", source], perm, cf


def forward_source(native_call: dict[str, Any]) -> str | None:
    """The recorded ``keras.ops.conv_transpose`` or ``keras.layers.Conv{n}DTranspose`` call."""
    made = _source(native_call, False)
    if made is None:
        return None
    lines, _, cf = made
    back = "y" if cf else "np.moveaxis(y, -1, 1)"
    return "\n".join([*lines, "native_dtype = str(y.dtype)", f"out = {back}.astype(np.float64)"])


def gradient_source(native_call: dict[str, Any], quantity: str) -> str | None:
    """The worker's ``grad`` request for the recorded call: one backward pass for the recorded
    ``wrt`` gradients; ``out`` the ``quantity``'s, canonical (input channels first, the kernel
    through the inverse permutation, no flip)."""
    made = _source(native_call, True)
    wrt = (_kwargs(native_call) or {}).get("wrt")
    if made is None or quantity not in WRT or not isinstance(wrt, list) or WRT[quantity] not in wrt:
        return None
    lines, perm, cf = made
    inverse = sorted(range(len(perm)), key=perm.__getitem__)
    back = {"grad_input": "y" if cf else "np.moveaxis(y, -1, 1)",
            "grad_weight": f"np.transpose(y, {literal(inverse)})", "grad_bias": "y"}[quantity]
    return "\n".join([*lines, f"y = grads[{wrt.index(WRT[quantity])}]  # one backward pass for {literal(wrt)}",
                      "native_dtype = str(y.dtype)", f"out = {back}.astype(np.float64)"])
