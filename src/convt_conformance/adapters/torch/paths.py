"""PyTorch execution paths: the same ``conv_transpose{n}d`` reached another way.

Columns (API names with an ``@path`` suffix; the canonical convention is unchanged, only the
path differs):

- ``conv_transpose@channels_last`` / ``ConvTranspose@channels_last``: input and weight (the
  module's parameters via ``Module.to(memory_format=...)``) in ``torch.channels_last`` (rank 2)
  or ``torch.channels_last_3d`` (rank 3); on CPU this routes to the oneDNN (mkldnn) kernels.
  Rank 1 has no channels-last memory format: unsupported.
- ``conv_transpose@compile``: ``torch.compile(backend="inductor", dynamic=False,
  fullgraph=True)`` of a function making the functional call; one compiled function per
  (rank, hyper-parameters, bias, shapes, dtype, device), so every call is a fresh static-shape
  compile or a cache hit, never a silent eager fallback (``fail_on_recompile_limit_hit``).
- ``conv_transpose@autocast_bf16``: the functional call under ``torch.autocast(<device>,
  dtype=torch.bfloat16)``. The compute dtype actually used is the output's dtype (autocast
  casts float32 and float16 inputs to bfloat16, leaves float64 alone) and is reported as
  ``RunOutput.compute_dtype``; the output is returned as float64 like every other.
- ``conv_transpose@deterministic``: the functional call with
  ``torch.use_deterministic_algorithms(True)`` (restored afterwards). It selects other kernels
  on CUDA (cuDNN deterministic algorithms); on CPU the kernels are the same.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from convt_conformance.adapters.base import NativeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.path_subsets import split_api

PATH_APIS = ("conv_transpose@channels_last", "ConvTranspose@channels_last", "conv_transpose@compile",
             "conv_transpose@autocast_bf16", "conv_transpose@deterministic")
_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
COMPILE_OPTIONS = {"backend": "inductor", "mode": "default", "dynamic": False, "fullgraph": True}
# Each compiled function shares one code object; Dynamo counts its entries against these limits
# and past them would fall back to eager silently. Raised, and a hit is an error instead.
_DYNAMO_LIMITS = {"recompile_limit": 1_000_000, "accumulated_recompile_limit": 1_000_000,
                  "fail_on_recompile_limit_hit": True}


def path_label(api: str, rank: int) -> str:
    """``conv_transpose@compile`` -> ``conv_transpose2d@compile`` (rank suffix on the base name)."""
    base, path = split_api(api)
    name = f"conv_transpose{rank}d" if base == "conv_transpose" else f"ConvTranspose{rank}d"
    return f"{name}@{path}"


def path_supports(case, api: str, device: str, dtype: str) -> str | None:
    """The path-specific reason a valid case cannot take this path (None: it can)."""
    _, path = split_api(api)
    if path == "channels_last" and case.rank == 1:
        return ("torch has no channels-last memory format for 3-D (N, C, W) tensors: "
                "torch.channels_last is 4-D only, torch.channels_last_3d 5-D only")
    return None


@functools.lru_cache(maxsize=1024)
def compiled_call(rank: int, kwargs_key: tuple, with_bias: bool, shapes: tuple, dtype: str, device: str):
    """One ``torch.compile``d functional call per static signature (the compile cache).

    The function closes over the hyper-parameters (constants in the graph) and takes
    ``(x, w)`` or ``(x, w, b)``."""
    import torch

    fn = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs_key}
    opts = {k: v for k, v in COMPILE_OPTIONS.items() if k != "mode"}
    if with_bias:
        return torch.compile(lambda x, w, b: fn(x, w, b, **kwargs), **opts)
    return torch.compile(lambda x, w: fn(x, w, None, **kwargs), **opts)


def _module(rank: int, case, x, w, b, kwargs, dev, tdt):
    import torch

    mod = getattr(torch.nn, f"ConvTranspose{rank}d")(
        x.shape[1], w.shape[1] * case.groups, kernel_size=list(w.shape[2:]), bias=b is not None,
        device=dev, dtype=tdt, **kwargs)
    mod.weight.copy_(w)
    if b is not None:
        mod.bias.copy_(b)
    return mod


def run_path(case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
             b: np.ndarray | None) -> RunOutput:
    """Make the native call of ``api`` (base ``@`` path) on canonical float64 arrays."""
    import torch

    from convt_conformance.adapters.torch.adapter import call_inputs  # local: torch_adapter imports this module

    base, path = split_api(api)
    dev, tdt, tx, tw, tb, kwargs = call_inputs(case, device, dtype, x, w, b)
    rank = x.ndim - 2
    fn = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    extra: dict[str, Any] = {"path": path}
    compute_dtype = None
    func = (f"torch.nn.functional.conv_transpose{rank}d" if base == "conv_transpose"
            else f"torch.nn.ConvTranspose{rank}d")
    call = NativeCall(
        function=_function_as_run(func, path or "", dev), input_layout=_LAYOUT.get(rank, "?"),
        weight_layout="(C_in, C_out/groups, *K)", output_layout=_LAYOUT.get(rank, "?"),
        weight_transform="identity (no permutation, no flip)", weight_permutation=None, weight_flip=False,
        padding_mapping="padding=p (symmetric, cut from both ends); output_padding passed as is",
        arguments={**kwargs, "bias": b is not None, "device": dev, "placed_on": None,
                   "dtype": dtype, **extra},
        precision={"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                   **({"autocast": "bfloat16"} if path == "autocast_bf16" else {})},
    )
    try:  # the call that failed is recorded (convt_conformance/checking/check.py)
        with torch.no_grad():
            if path == "channels_last":
                fmt = torch.channels_last_3d if rank == 3 else torch.channels_last
                tx = tx.contiguous(memory_format=fmt)
                if base == "conv_transpose":
                    out = fn(tx, tw.contiguous(memory_format=fmt), tb, **kwargs)
                else:
                    out = _module(rank, case, x, tw, tb, kwargs, dev, tdt).to(memory_format=fmt)(tx)
                extra.update(memory_format=str(fmt).replace("torch.", ""),
                             output_is_channels_last=out.is_contiguous(memory_format=fmt))
            elif path == "compile":
                key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())
                shapes = (tuple(tx.shape), tuple(tw.shape))
                cf = compiled_call(rank, key, tb is not None, shapes, dtype, dev)
                hits_before = compiled_call.cache_info().hits
                with torch._dynamo.config.patch(**_DYNAMO_LIMITS):
                    out = cf(tx, tw) if tb is None else cf(tx, tw, tb)
                extra.update(COMPILE_OPTIONS, compile_cache="torch.compile per (rank, hyper-parameters, "
                             "bias, shapes, dtype, device)", compile_cache_entries=compiled_call.cache_info().currsize,
                             compile_cache_hits=hits_before)
            elif path == "autocast_bf16":
                with torch.autocast(device_type=dev, dtype=torch.bfloat16):
                    out = fn(tx, tw, tb, **kwargs)
                compute_dtype = str(out.dtype).replace("torch.", "")
                extra.update(autocast={"device_type": dev, "dtype": "bfloat16"}, compute_dtype=compute_dtype)
            elif path == "deterministic":
                before = torch.are_deterministic_algorithms_enabled()
                torch.use_deterministic_algorithms(True)
                try:
                    out = fn(tx, tw, tb, **kwargs)
                finally:
                    torch.use_deterministic_algorithms(before)
                extra.update(use_deterministic_algorithms=True)
            else:
                raise ValueError(f"torch adapter: unknown execution path {path!r} in api {api!r}")
            res = out.detach().to("cpu", torch.float64).numpy()
    except Exception as exc:
        attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
        raise
    call.arguments.update(placed_on=str(out.device), **extra)
    native = str(out.dtype).replace("torch.", "")
    return RunOutput(res, native, call, placed_on="gpu" if out.device.type == "cuda" else out.device.type,
                     compute_dtype=compute_dtype)


def _function_as_run(func: str, path: str, dev: str) -> str:
    """The native call exactly as made, as one readable expression."""
    if path == "channels_last":
        return f"{func} on tensors .contiguous(memory_format=channels_last[_3d])"
    if path == "compile":
        return f"torch.compile({func}, backend='inductor', dynamic=False, fullgraph=True)"
    if path == "autocast_bf16":
        return f"with torch.autocast('{dev}', dtype=torch.bfloat16): {func}"
    return f"with torch.use_deterministic_algorithms(True): {func}"
