"""Reproducer call sources for the jax adapter (``conformance repro``; see Adapter.repro_call).

Convention (convt_conformance/adapters/jax/adapter.py): NC* input and output (``dimension_numbers`` ``(NC*, OI*,
NC*)``). ``lax.conv_transpose``: the canonical weight passed as the forward conv's OI* kernel with
``transpose_kernel=True`` (JAX swaps I/O and flips); padding as recorded (``(begin, end -
output_padding)`` with ``use_consistent_padding=True``, or the stride-dilated form, or 'SAME' /
'VALID'). ``lax.conv_general_dilated``: ``lhs_dilation=stride``, pads ``(d*(k-1)-begin,
d*(k-1)-end+output_padding)``, the weight regrouped to ``(C_out, C_in/g, *K)`` and spatially
flipped. Bias added with ``+`` in the same jit. Covered: both APIs jitted, the ``@eager``
(``jax.disable_jit()``) and ``@vmap`` paths, and the ``jax.vjp`` gradients (pullback jitted; the
weight gradient of conv_general_dilated mapped back through the inverse regroup + flip).
"""

from __future__ import annotations

import re
from typing import Any

from convt_conformance.adapters.jax.paths import DESCRIPTION

_PATHS = {tpl: path for path, tpl in DESCRIPTION.items()}
_GRADIENT = re.compile(r"jax\.vjp\(jax\.jit\(jax\.lax\.(conv_transpose|conv_general_dilated)( \+ b)?\), x, w"
                       r"(?:, b)?\)\[1\]\(g\)\[([012])\] \(pullback jitted\)")


def _pads(p: Any) -> str | list[tuple[int, ...]]:
    """Recorded padding as lax takes it: a string, or (begin, end) pairs (older gradient records
    wrote a string as a list of one-character lists)."""
    if isinstance(p, str):
        return p
    if p and all(isinstance(q, list) and len(q) == 1 and isinstance(q[0], str) for q in p):
        return "".join(q[0] for q in p)
    return [tuple(int(v) for v in q) for q in p]


def _conv_lines(api: str, sp: str, stride: Any, pads: Any, rhs_dilation: Any, groups: int, consistent: bool,
                highest: bool) -> list[str]:
    """Lines defining ``wn`` (the native weight) and ``conv(x, w)`` (the lax call)."""
    dn = (f"NC{sp}", f"OI{sp}", f"NC{sp}")
    lines = [
        "import jax",
        "from jax import lax",
        "",
        "jax.config.update('jax_enable_x64', True)",
        "if PRECISION == 'strict':",
        "    jax.config.update('jax_default_matmul_precision', 'highest')",
        f"prec = {'lax.Precision.HIGHEST' if highest else 'None'}",
        f"dn = {dn!r}",
    ]
    if api == "conv_transpose":
        extra = ", use_consistent_padding=True" if consistent else ""
        return lines + [
            "wn = w  # given as the forward conv's OI* kernel; transpose_kernel=True swaps and flips",
            "def conv(x, w):",
            f"    return lax.conv_transpose(x, w, {tuple(stride)!r}, {pads!r}, rhs_dilation={tuple(rhs_dilation)!r},",
            f"        dimension_numbers=dn, transpose_kernel=True, precision=prec{extra})",
        ]
    return lines + [
        f"g = {int(groups)}  # regroup (C_in, C_out/g, *K) -> (C_out, C_in/g, *K), then flip the spatial axes",
        "cin, cog, k = w.shape[0], w.shape[1], w.shape[2:]",
        "wg = np.swapaxes(w.reshape(g, cin // g, cog, *k), 1, 2).reshape(g * cog, cin // g, *k)",
        "wn = wg[(Ellipsis,) + (slice(None, None, -1),) * len(k)]",
        "def conv(x, w):",
        f"    return lax.conv_general_dilated(x, w, {(1,) * (len(sp) or 1)!r}, {pads!r}, "
        f"lhs_dilation={tuple(stride)!r},",
        f"        rhs_dilation={tuple(rhs_dilation)!r}, dimension_numbers=dn, feature_group_count=g, precision=prec)",
    ]


_FULL = ["def full(x, w, *b):  # the lax call, plus the bias inside the same function",
         "    y = conv(x, w)",
         "    return y + b[0].reshape((1, -1) + (1,) * (x.ndim - 2)) if b else y"]
_ARGS = ["dev = jax.devices('gpu' if DEVICE == 'gpu' else 'cpu')[0]",
         "args = [jax.device_put(np.ascontiguousarray(t, dtype=NP_DTYPE), dev) for t in",
         "        ((x, wn) if b is None else (x, wn, b))]"]


def forward_source(native_call: dict) -> str | None:
    """The recorded ``jax.lax.conv_transpose`` / ``conv_general_dilated`` call, jitted as the
    adapter does, or on the recorded path (``@eager``: under ``jax.disable_jit()``; ``@vmap``:
    ``jax.jit(jax.vmap(per-example call))``)."""
    fn = native_call.get("function", "")
    a = native_call.get("arguments") or {}
    path = a.get("path")
    api = fn.removeprefix("jax.lax.") if path is None else next(
        (api for tpl, p in _PATHS.items() for api in ("conv_transpose", "conv_general_dilated")
         if p == path and tpl.format(api=api) == fn), None)
    if api not in ("conv_transpose", "conv_general_dilated") or (path is None and not fn.startswith("jax.lax.")):
        return None
    sp = native_call.get("input_layout", "NC?")[2:]
    highest = (native_call.get("precision") or {}).get("precision") == "HIGHEST"
    stride = a["strides"] if api == "conv_transpose" else a["lhs_dilation"]
    lines = _conv_lines(api, sp, stride, _pads(a["padding"]), a["rhs_dilation"], a.get("feature_group_count", 1),
                        bool(a.get("use_consistent_padding")), highest) + _FULL
    if path == "eager":
        lines += ["def fn(*args):  # op-by-op dispatch: each primitive on its own",
                  "    with jax.disable_jit():",
                  "        return full(*args)"]
    elif path == "vmap":
        lines += ["fn = jax.jit(jax.vmap(lambda xi, w, *b: full(xi[None], w, *b)[0],",
                  "                      in_axes=(0, None) if b is None else (0, None, None)))"]
    else:
        lines.append("fn = jax.jit(full)")
    lines += _ARGS + ["out = np.asarray(jax.device_get(fn(*args)))",
                      "native_dtype, out = str(out.dtype), out.astype(np.float64)"]
    return "\n".join(lines)


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """``jax.vjp`` of the jitted call at ``(x, w_native[, b])`` pulled back with ``G`` (pullback
    jitted, as the adapter); grad_weight of conv_general_dilated through the inverse regroup + flip."""
    m = _GRADIENT.fullmatch(native_call.get("function", ""))
    a = native_call.get("arguments") or {}
    if not m or int(m[3]) != {"grad_input": 0, "grad_weight": 1, "grad_bias": 2}.get(quantity):
        return None
    api, index = m[1], int(m[3])
    sp = native_call.get("input_layout", "NC?")[2:]
    highest = (native_call.get("precision") or {}).get("precision") == "HIGHEST"
    consistent = a.get("use_consistent_padding", "use_consistent_padding=True" in
                       (native_call.get("padding_mapping") or ""))
    lines = _conv_lines(api, sp, a["stride_or_lhs_dilation"], _pads(a["padding"]), a["rhs_dilation"],
                        a.get("groups", 1), bool(consistent), highest) + _FULL + [
        "fn = jax.jit(full)",
        "pull = jax.jit(lambda g, *args: jax.vjp(fn, *args)[1](g))  # the cotangents of (x, w[, b])",
    ] + _ARGS + [
        "args = [jax.device_put(np.ascontiguousarray(G, dtype=NP_DTYPE), dev)] + args",
        f"out = np.asarray(jax.device_get(pull(*args)[{index}]))",
        "native_dtype, out = str(out.dtype), out.astype(np.float64)",
    ]
    if api == "conv_general_dilated" and index == 1:
        lines += ["# back to canonical: flip back, (C_out, C_in/g, *K) -> (C_in, C_out/g, *K)",
                  "out = out[(Ellipsis,) + (slice(None, None, -1),) * (out.ndim - 2)]",
                  "cout, cig = out.shape[:2]",
                  "out = np.swapaxes(out.reshape(g, cout // g, cig, *out.shape[2:]), 1, 2).reshape(",
                  "    g * cig, cout // g, *out.shape[2:])"]
    return "\n".join(lines)
