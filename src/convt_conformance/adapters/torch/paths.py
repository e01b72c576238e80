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

The calls themselves are convt_conformance/adapters/torch/calls.py's (:data:`PATH_CALLS`); this module picks
one, records it (``arguments["call"]`` / ``["call_kwargs"]``) and reads back what it reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from convt_conformance.adapters.base import NativeCall, RunOutput, attach_failed_call
from convt_conformance.adapters.path_subsets import split_api
from convt_conformance.adapters.torch import calls as torch_calls
from convt_conformance.adapters.torch.translate import HYPER, call_kwargs, placed

if TYPE_CHECKING:
    from convt_conformance.model.case import Case

PATH_APIS = ("conv_transpose@channels_last", "ConvTranspose@channels_last", "conv_transpose@compile",
             "conv_transpose@autocast_bf16", "conv_transpose@deterministic")
# (base api, path) -> the function of calls.py that makes the call
PATH_CALLS = {("conv_transpose", "channels_last"): "conv_transpose_channels_last",
              ("ConvTranspose", "channels_last"): "conv_transpose_module_channels_last",
              ("conv_transpose", "compile"): "conv_transpose_compiled",
              ("conv_transpose", "autocast_bf16"): "conv_transpose_autocast_bf16",
              ("conv_transpose", "deterministic"): "conv_transpose_deterministic"}
_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
COMPILE_OPTIONS = {"backend": "inductor", "mode": "default", "dynamic": False, "fullgraph": True}
# the compile cache: one torch.compile per static signature (calls.compiled_conv_transpose)
compiled_call = torch_calls.compiled_conv_transpose


def path_label(api: str, rank: int) -> str:
    """``conv_transpose@compile`` -> ``conv_transpose2d@compile`` (rank suffix on the base name)."""
    base, path = split_api(api)
    name = f"conv_transpose{rank}d" if base == "conv_transpose" else f"ConvTranspose{rank}d"
    return f"{name}@{path}"


def path_supports(case: Case, api: str, device: str, dtype: str) -> str | None:
    """The path-specific reason a valid case cannot take this path (None: it can)."""
    _, path = split_api(api)
    if path == "channels_last" and case.rank == 1:
        return ("torch has no channels-last memory format for 3-D (N, C, W) tensors: "
                "torch.channels_last is 4-D only, torch.channels_last_3d 5-D only")
    return None


def run_path(case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
             b: np.ndarray | None) -> RunOutput:
    """Make the native call of ``api`` (base ``@`` path) on canonical float64 arrays."""
    import torch


    base, path = split_api(api)
    name = PATH_CALLS.get((base, path or ""))
    if name is None:
        raise ValueError(f"torch adapter: unknown execution path {path!r} in api {api!r}")
    kwargs = call_kwargs(case, device, dtype)
    if path == "compile":
        kwargs.update({k: v for k, v in COMPILE_OPTIONS.items() if k != "mode"})
    rank = x.ndim - 2
    func = (f"torch.nn.functional.conv_transpose{rank}d" if base == "conv_transpose"
            else f"torch.nn.ConvTranspose{rank}d")
    call = NativeCall(
        function=_function_as_run(func, path or "", kwargs["device"]), input_layout=_LAYOUT.get(rank, "?"),
        weight_layout="(C_in, C_out/groups, *K)", output_layout=_LAYOUT.get(rank, "?"),
        weight_transform="identity (no permutation, no flip)", weight_permutation=None, weight_flip=False,
        padding_mapping="padding=p (symmetric, cut from both ends); output_padding passed as is",
        arguments={**{k: kwargs[k] for k in HYPER}, "bias": b is not None,
                   "device": kwargs["device"], "placed_on": None, "dtype": dtype, "path": path,
                   "call": name, "call_kwargs": dict(kwargs)},
        precision={"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                   **({"autocast": "bfloat16"} if path == "autocast_bf16" else {})},
    )
    hits_before = compiled_call.cache_info().hits
    try:  # the call that failed is recorded (convt_conformance/checking/check.py)
        res, facts = getattr(torch_calls, name)(x, w, b, **kwargs)
    except Exception as exc:
        attach_failed_call(exc, call)  # the call that failed (convt_conformance/checking/check.py records it)
        raise
    extra: dict[str, Any] = {}
    compute_dtype = None
    if path == "channels_last":
        extra.update(memory_format=facts["memory_format"], output_is_channels_last=facts["output_is_channels_last"])
    elif path == "compile":
        extra.update(COMPILE_OPTIONS, compile_cache="torch.compile per (rank, hyper-parameters, bias, shapes, "
                     "dtype, device)", compile_cache_entries=compiled_call.cache_info().currsize,
                     compile_cache_hits=hits_before)
    elif path == "autocast_bf16":
        compute_dtype = str(facts["dtype"])
        extra.update(autocast={"device_type": kwargs["device"], "dtype": "bfloat16"}, compute_dtype=compute_dtype)
    elif path == "deterministic":
        extra.update(use_deterministic_algorithms=True)
    device_out = str(facts["device"])
    call.arguments.update(placed_on=device_out, **extra)
    return RunOutput(res, str(facts["dtype"]), call, placed_on=placed(device_out), compute_dtype=compute_dtype)


def _function_as_run(func: str, path: str, dev: str) -> str:
    """The native call exactly as made, as one readable expression (for the report)."""
    if path == "channels_last":
        return f"{func} on tensors .contiguous(memory_format=channels_last[_3d])"
    if path == "compile":
        return f"torch.compile({func}, backend='inductor', dynamic=False, fullgraph=True)"
    if path == "autocast_bf16":
        return f"with torch.autocast('{dev}', dtype=torch.bfloat16): {func}"
    return f"with torch.use_deterministic_algorithms(True): {func}"
