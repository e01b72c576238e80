"""Reproducer call sources for the tensorflow adapter (``conformance repro``; see Adapter.repro_call).

The native call is convt_conformance/adapters/tensorflow/calls.py's, the one the adapter ran: the
record's ``arguments["call"]`` names it, and the script embeds its source text and calls it with
the record's ``arguments["call_kwargs"]`` written as literals (convt_conformance/adapters/call_source.py),
the dtype excepted: that is the script's ``DTYPE`` (the check's own dtype; a crashed check's script
makes its sibling check's call, recorded in another dtype). A record naming no function of
calls.py's ``CALLS``, or holding an argument that is not a plain literal, gets no source.

Around the call, the adapter's translation from the canonical convention: the input (and a
gradient's cotangent ``G``) moved channels-last unless the recorded ``data_format`` is
channels-first, the weight permuted by the recorded ``weight_permutation`` (no flip); the result
moved back (a filter gradient through the inverse permutation).
"""

from __future__ import annotations

from typing import Any

from convt_conformance.adapters.call_source import call_source, literal
from convt_conformance.adapters.tensorflow import calls
from convt_conformance.adapters.tensorflow.calls import WRT

_CHANNELS_FIRST = ("NCW", "NCHW", "NCDHW")


def permutation(native_call: dict[str, Any]) -> list[int] | None:
    """The recorded ``weight_permutation`` when it is a permutation of ints, else None."""
    perm = native_call.get("weight_permutation")
    if isinstance(perm, list) and all(type(p) is int for p in perm) and sorted(perm) == list(range(len(perm))):
        return perm
    return None


def _setup(native_call: dict[str, Any]) -> list[str]:
    tf32 = bool((native_call.get("precision") or {}).get("tensor_float_32_execution", False))
    return [
        "import os",
        "",
        "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # quiet TF's startup log, as the suite",
        "import tensorflow as tf",
        "",
        f"tf.config.experimental.enable_tensor_float_32_execution({tf32!r})  # as recorded",
        "tf.config.set_soft_device_placement(False)  # as the suite: no silent CPU fallback",
        "",
    ]


def _call(native_call: dict[str, Any], positional: str) -> str | None:
    """calls.py's function and the call of it as recorded (its result in ``y``), or None.
    ``positional``: the expressions of the arrays in TF's layout."""
    a = native_call.get("arguments") or {}
    kwargs = {k: v for k, v in a["call_kwargs"].items() if k != "dtype"}
    return call_source(calls, {"call": a.get("call"), "call_kwargs": kwargs}, positional=f"{positional}, dtype=DTYPE",
                       result="y, placed_on")


def _recorded(native_call: dict[str, Any]) -> tuple[list[int], dict[str, Any], bool] | None:
    """(weight permutation, call_kwargs, whether the layout is channels-first) of the record, or None."""
    a = native_call.get("arguments")
    kwargs = a.get("call_kwargs") if isinstance(a, dict) else None
    perm = permutation(native_call)
    if perm is None or not isinstance(kwargs, dict):
        return None
    return perm, kwargs, kwargs.get("data_format") in _CHANNELS_FIRST


def forward_source(native_call: dict[str, Any]) -> str | None:
    """The recorded eager, ``@xla`` (``jit_compile``) or ``@nchw`` (``data_format``) call; the
    output moved back channels-first."""
    recorded = _recorded(native_call)
    if recorded is None or recorded[1].get("wrt") is not None:
        return None
    perm, _, channels_first = recorded
    source = _call(native_call, f"{'x' if channels_first else 'np.moveaxis(x, 1, -1)'}, "
                                f"np.transpose(w, {literal(perm)}), b")
    if source is None:
        return None
    back = "y" if channels_first else "np.moveaxis(y, -1, 1)"
    return "\n".join(_setup(native_call) + [source, "native_dtype = str(y.dtype)", f"out = {back}.astype(np.float64)"])


def gradient_source(native_call: dict[str, Any], quantity: str) -> str | None:
    """``tf.GradientTape`` around the recorded call (calls.py's ``wrt``), the cotangent ``G`` in
    the output's layout; back to canonical: grad_input channels first, grad_weight through the
    inverse of the forward permutation (no flip), grad_bias as is."""
    recorded = _recorded(native_call)
    if recorded is None or quantity not in WRT or recorded[1].get("wrt") != WRT[quantity]:
        return None
    perm, _, channels_first = recorded
    move = "{}" if channels_first else "np.moveaxis({}, 1, -1)"
    source = _call(native_call, f"{move.format('x')}, np.transpose(w, {literal(perm)}), b, {move.format('G')}")
    if source is None:
        return None
    inverse = sorted(range(len(perm)), key=perm.__getitem__)
    back = {"grad_input": "y" if channels_first else "np.moveaxis(y, -1, 1)",
            "grad_weight": f"np.transpose(y, {literal(inverse)})", "grad_bias": "y"}[quantity]
    return "\n".join(_setup(native_call) + [source, "native_dtype = str(y.dtype)", f"out = {back}.astype(np.float64)"])
