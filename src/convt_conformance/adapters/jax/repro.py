"""Reproducer call sources for the jax adapter (``conformance repro``; see Adapter.repro_call).

The native call is convt_conformance/adapters/jax/calls.py's ``lax_conv``, the one the adapter ran
(jitted, or on the recorded ``path``, or its jitted ``jax.vjp`` pullback for a gradient): the
record's ``arguments["call"]`` names it, and the script embeds its source text and calls it with
the record's ``arguments["call_kwargs"]`` written as literals (convt_conformance/adapters/call_source.py),
the dtype excepted: that is the script's ``DTYPE`` (the check's own dtype; a crashed check's script
makes its sibling check's call, recorded in another dtype). A record naming no function of
calls.py's ``CALLS``, naming a ``jax.lax`` function outside ``LAX_APIS``, or holding an argument
that is not a plain literal, gets no source.

Around the call, the adapter's translation from the canonical convention, its own functions'
source embedded too: the weight through ``native_weight`` (``conv_general_dilated``: regrouped to
``(C_out, C_in/g, *K)`` and flipped), a weight gradient of ``conv_general_dilated`` back through
``unregroup_flip``; input, output and cotangent ``G`` are NC* as the canonical layout.
"""

from __future__ import annotations

import inspect
from typing import Any

from convt_conformance.adapters.call_source import call_source, literal
from convt_conformance.adapters.jax import calls
from convt_conformance.adapters.jax.calls import LAX_APIS, WRT
from convt_conformance.adapters.jax.layout import native_weight, regroup_flip, unregroup_flip

_SETUP = ["import jax", "", "jax.config.update('jax_enable_x64', True)", "if PRECISION == 'strict':",
          "    jax.config.update('jax_default_matmul_precision', 'highest')", ""]


def _source(native_call: dict[str, Any], wrt: str | None) -> tuple[list[str], str, int] | None:
    """(lines up to the call, its result in ``y``; the recorded api; its groups) when the record
    names a call of calls.py with ``wrt`` as given, else None."""
    a = native_call.get("arguments")
    kwargs = a.get("call_kwargs") if isinstance(a, dict) else None
    if not isinstance(a, dict) or not isinstance(kwargs, dict) or kwargs.get("wrt") != wrt:
        return None
    api, groups = kwargs.get("api"), kwargs.get("feature_group_count", 1)
    if api not in LAX_APIS or type(groups) is not int:  # the api selects the lax function: known ones only
        return None
    weight = f"native_weight(w, {literal(api)}, {literal(groups)})"
    source = call_source(calls, {"call": a.get("call"), "call_kwargs": {k: v for k, v in kwargs.items() if k != "dtype"}},
                         positional=f"x, {weight}, b{', G' if wrt else ''}, dtype=DTYPE", result="y, placed_on")
    if source is None:
        return None
    translation = [inspect.getsource(regroup_flip), inspect.getsource(native_weight)]
    return [*_SETUP, *translation, source], api, groups


def forward_source(native_call: dict[str, Any]) -> str | None:
    """The recorded ``jax.lax.conv_transpose`` / ``conv_general_dilated`` call, jitted as the
    adapter does, or on the recorded path (``'eager'``: under ``jax.disable_jit()``; ``'vmap'``:
    ``jax.jit(jax.vmap(per-example call))``)."""
    made = _source(native_call, None)
    if made is None:
        return None
    return "\n".join([*made[0], "native_dtype = str(y.dtype)", "out = y.astype(np.float64)"])


def gradient_source(native_call: dict[str, Any], quantity: str) -> str | None:
    """``jax.vjp`` of the jitted call at ``(x, w_native[, b])`` pulled back with ``G`` (pullback
    jitted, as the adapter); grad_weight of conv_general_dilated through the inverse regroup + flip."""
    made = _source(native_call, WRT[quantity]) if quantity in WRT else None
    if made is None:
        return None
    lines, api, groups = made
    lines += ["native_dtype = str(y.dtype)", "out = y.astype(np.float64)"]
    if quantity == "grad_weight" and api == "conv_general_dilated":
        lines += [inspect.getsource(unregroup_flip), f"out = unregroup_flip(out, {literal(groups)})"]
    return "\n".join(lines)
