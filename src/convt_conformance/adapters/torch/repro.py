"""Reproducer call sources for the torch adapter (``conformance repro``; see Adapter.repro_call).

Convention: torch's own is the canonical one (NC* input and output, weight ``(C_in, C_out/groups,
*K)`` without flip, symmetric ``padding`` cut from both ends, ``output_padding`` at the far end):
the sources pass ``x, w, b`` as they are. Covered: ``torch.nn.functional.conv_transpose{n}d`` and
``nn.ConvTranspose{n}d``, the execution paths of convt_conformance/adapters/torch/paths.py (``@channels_last``,
``@compile``, ``@autocast_bf16``, ``@deterministic``) and the autograd gradients of both APIs.
Only a recorded ``function`` that is exactly one the adapter writes is accepted (a results file
never puts code into a script); the arguments go in as literals (``repr``).
"""

from __future__ import annotations

import re

from convt_conformance.adapters.torch.paths import _function_as_run

_FORWARD = re.compile(r"torch\.nn\.(functional\.conv_transpose|ConvTranspose)([123])d")
_GRADIENT = re.compile(r"torch\.autograd\.grad\((torch\.nn\.(?:functional\.conv_transpose|ConvTranspose)[123]d)"
                       r"\(\.\.\.\), \[(input|weight|bias|mod\.weight|mod\.bias)\], grad_outputs=g\)")


def _setup(native_call: dict) -> list[str]:
    tf32 = bool((native_call.get("precision") or {}).get("cudnn.allow_tf32", False))
    return [
        "import torch",
        "",
        f"torch.backends.cudnn.allow_tf32 = {tf32!r}  # as recorded",
        "if PRECISION == 'strict':",
        "    torch.backends.cuda.matmul.allow_tf32 = False",
        "    torch.set_float32_matmul_precision('highest')",
        "dev = 'cuda' if DEVICE == 'gpu' else 'cpu'",
        "tdt = getattr(torch, DTYPE)",
    ]


def _kwargs(a: dict) -> str:
    return (f"stride={a['stride']!r}, padding={a['padding']!r}, output_padding={a['output_padding']!r}, "
            f"groups={a['groups']!r}, dilation={a['dilation']!r}")


def _module(fn: str, a: dict, indent: str = "    ") -> list[str]:
    """Lines building ``mod`` (the module with the case's weight and bias copied in)."""
    return [f"{indent}mod = {fn}(x.shape[1], w.shape[1] * {a['groups']!r}, kernel_size=list(w.shape[2:]),",
            f"{indent}    bias=b is not None, device=dev, dtype=tdt, {_kwargs(a)})",
            f"{indent}mod.weight.copy_(tw)",
            f"{indent}if tb is not None:",
            f"{indent}    mod.bias.copy_(tb)"]


def forward_source(native_call: dict) -> str | None:
    """The recorded forward call (plain or an execution path, ``arguments["path"]``): NC* in and
    out, no weight transform. None for a call this module does not know."""
    a = native_call.get("arguments") or {}
    path = a.get("path")
    rank = len(a.get("stride") or ())
    funcs = {f"torch.nn.functional.conv_transpose{rank}d", f"torch.nn.ConvTranspose{rank}d"}
    fn = native_call.get("function", "")
    if path is None:
        m = _FORWARD.fullmatch(fn)
        if not m or fn not in funcs:
            return None
    else:
        fn = next((f for f in sorted(funcs) if _function_as_run(f, path, a.get("device", "cpu"))
                   == native_call.get("function")), "")
        if not fn or path not in ("channels_last", "compile", "autocast_bf16", "deterministic"):
            return None
    functional = "functional" in fn
    lines = _setup(native_call) + [
        "tx = torch.from_numpy(x).to(device=dev, dtype=tdt)",
        "tw = torch.from_numpy(w).to(device=dev, dtype=tdt)",
        "tb = torch.from_numpy(b).to(device=dev, dtype=tdt) if b is not None else None",
        "with torch.no_grad():",
    ]
    call = f"{fn}(tx, tw, tb, {_kwargs(a)})"
    if path == "channels_last":
        lines += [f"    fmt = torch.{'channels_last_3d' if rank == 3 else 'channels_last'}",
                  "    tx = tx.contiguous(memory_format=fmt)"]
        if functional:
            lines.append(f"    y = {fn}(tx, tw.contiguous(memory_format=fmt), tb, {_kwargs(a)})")
        else:
            lines += _module(fn, a) + ["    y = mod.to(memory_format=fmt)(tx)"]
    elif path == "compile":
        lines += ["    opts = dict(backend='inductor', dynamic=False, fullgraph=True)  # as the adapter",
                  "    if tb is None:",
                  f"        cf = torch.compile(lambda x, w: {fn}(x, w, None, {_kwargs(a)}), **opts)",
                  "        y = cf(tx, tw)",
                  "    else:",
                  f"        cf = torch.compile(lambda x, w, b: {fn}(x, w, b, {_kwargs(a)}), **opts)",
                  "        y = cf(tx, tw, tb)"]
    elif path == "autocast_bf16":
        lines += ["    with torch.autocast(device_type=dev, dtype=torch.bfloat16):",
                  f"        y = {call}",
                  "    print(f'autocast compute dtype: {y.dtype}')"]
    elif path == "deterministic":
        lines += ["    torch.use_deterministic_algorithms(True)",
                  f"    y = {call}"]
    elif functional:
        lines.append(f"    y = {call}")
    else:
        lines += _module(fn, a) + ["    y = mod(tx)"]
    lines += ["native_dtype = str(y.dtype).replace('torch.', '')",
              "out = y.detach().to('cpu', torch.float64).numpy()"]
    return "\n".join(lines)


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """``torch.autograd.grad(y, [target], grad_outputs=G)`` of the recorded call, ``requires_grad``
    on x, w (and b), the module's parameters for nn.ConvTranspose; torch's layout is canonical."""
    m = _GRADIENT.fullmatch(native_call.get("function", ""))
    a = native_call.get("arguments") or {}
    if not m or m[2].rsplit(".", 1)[-1] != quantity[5:]:
        return None
    fn, what = m[1], m[2]
    lines = _setup(native_call) + [
        "tx = torch.from_numpy(x).to(device=dev, dtype=tdt).requires_grad_()",
        "tg = torch.from_numpy(G).to(device=dev, dtype=tdt)",
    ]
    if "functional" in fn:
        lines += ["tw = torch.from_numpy(w).to(device=dev, dtype=tdt).requires_grad_()",
                  "tb = torch.from_numpy(b).to(device=dev, dtype=tdt).requires_grad_() if b is not None else None",
                  f"y = {fn}(tx, tw, tb, {_kwargs(a)})",
                  f"target = {{'input': tx, 'weight': tw, 'bias': tb}}[{what!r}]"]
    else:
        lines += ["tw, tb = torch.from_numpy(w), None if b is None else torch.from_numpy(b)",
                  "with torch.no_grad():"] + _module(fn, a) + [
                  "y = mod(tx)",
                  f"target = {{'input': tx, 'mod.weight': mod.weight, 'mod.bias': mod.bias}}[{what!r}]"]
    lines += ["(grad,) = torch.autograd.grad(y, [target], grad_outputs=tg)",
              "native_dtype = str(grad.dtype).replace('torch.', '')",
              "out = grad.detach().to('cpu', torch.float64).numpy()"]
    return "\n".join(lines)
