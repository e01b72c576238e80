"""PyTorch's native calls, written once: the adapter (adapter.py, paths.py) runs these functions,
and a reproducer script embeds their source and calls them with the recorded keyword arguments.

Each function imports only torch and NumPy (inside its body: a script gets the function's text).

Convention (torch's own, which IS the canonical one): ``x`` ``(N, C_in, *S)``, ``w``
``(C_in, C_out/groups, *K)`` applied without a flip, ``b`` ``(C_out,)`` or None, all float64
NumPy arrays already rounded to ``dtype``; ``padding`` one int per axis cut from both ends of
the full output, ``output_padding`` added at its far end; ``device`` ``"cpu"`` / ``"cuda"``,
``dtype`` a torch dtype name. Each returns ``(output, facts)``: the output (or gradient) as a
float64 NumPy array in torch's layout (the canonical one) and what torch reports about the
tensor it returned (``dtype``, ``device``, and the path's own facts).
"""

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

CALLS = ("conv_transpose", "conv_transpose_module", "conv_transpose_channels_last",
         "conv_transpose_module_channels_last", "conv_transpose_compiled", "conv_transpose_autocast_bf16",
         "conv_transpose_deterministic", "conv_transpose_grad", "conv_transpose_module_grad")
HELPERS = ("to_tensor", "new_module", "as_numpy", "compiled_conv_transpose")


def to_tensor(a: np.ndarray, *, device: str, dtype: str, requires_grad: bool = False) -> "torch.Tensor":
    """The float64 NumPy array ``a`` as a torch tensor of ``dtype`` on ``device``."""
    import torch

    t = torch.from_numpy(a).to(device=device, dtype=getattr(torch, dtype))
    return t.requires_grad_() if requires_grad else t


def new_module(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int], padding: list[int],
               output_padding: list[int], groups: int, dilation: list[int], device: str,
               dtype: str) -> "torch.nn.Module":
    """``nn.ConvTranspose{n}d(C_in, C_out, kernel_size=K, ...)`` with ``w`` and ``b`` copied into its
    weight ``(C_in, C_out/groups, *K)`` and bias."""
    import torch

    mod = getattr(torch.nn, f"ConvTranspose{x.ndim - 2}d")(
        x.shape[1], w.shape[1] * groups, kernel_size=list(w.shape[2:]), bias=b is not None, device=device,
        dtype=getattr(torch, dtype), stride=stride, padding=padding, output_padding=output_padding, groups=groups,
        dilation=dilation)
    with torch.no_grad():
        mod.weight.copy_(torch.from_numpy(w))
        if b is not None:
            mod.bias.copy_(torch.from_numpy(b))
    return mod


def as_numpy(y: "torch.Tensor") -> tuple[np.ndarray, dict[str, object]]:
    """``y`` as float64 on the CPU, with the dtype and device torch returned it in."""
    import torch

    return y.detach().to("cpu", torch.float64).numpy(), {"dtype": str(y.dtype).replace("torch.", ""),
                                                         "device": str(y.device)}


@functools.lru_cache(maxsize=1024)
def compiled_conv_transpose(rank: int, with_bias: bool, stride: tuple[int, ...], padding: tuple[int, ...],
                            output_padding: tuple[int, ...], groups: int, dilation: tuple[int, ...],
                            shapes: tuple[tuple[int, ...], ...], device: str, dtype: str, backend: str,
                            dynamic: bool, fullgraph: bool) -> "Callable[..., torch.Tensor]":
    """``torch.compile`` of a function making the functional call, one per static signature (the
    arguments: the hyper-parameters are constants in its graph; shapes, device and dtype make a
    fresh static-shape compile): it takes ``(x, w)`` or ``(x, w, b)``."""
    import torch

    fn = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    kwargs = dict(stride=list(stride), padding=list(padding), output_padding=list(output_padding), groups=groups,
                  dilation=list(dilation))
    if with_bias:
        return torch.compile(lambda x, w, b: fn(x, w, b, **kwargs), backend=backend, dynamic=dynamic,
                             fullgraph=fullgraph)
    return torch.compile(lambda x, w: fn(x, w, None, **kwargs), backend=backend, dynamic=dynamic,
                         fullgraph=fullgraph)


def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int], padding: list[int],
                   output_padding: list[int], groups: int, dilation: list[int], device: str,
                   dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """``torch.nn.functional.conv_transpose{n}d(x, w, b, ...)`` under ``torch.no_grad()``.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float64; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end. Returns the output ``(N, C_out, *S_out)`` as float64 and
    the dtype and device torch returned it in."""
    import torch

    tx, tw = (to_tensor(a, device=device, dtype=dtype) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype)
    with torch.no_grad():
        y = getattr(torch.nn.functional, f"conv_transpose{x.ndim - 2}d")(
            tx, tw, tb, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
            dilation=dilation)
    return as_numpy(y)


def conv_transpose_module(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int],
                          padding: list[int], output_padding: list[int], groups: int, dilation: list[int],
                          device: str, dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """``nn.ConvTranspose{n}d`` built with the hyper-parameters, ``w`` and ``b`` copied into its
    parameters, called on ``x`` under ``torch.no_grad()``.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float64; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end. Returns the output ``(N, C_out, *S_out)`` as float64 and
    the dtype and device torch returned it in."""
    import torch

    tx = to_tensor(x, device=device, dtype=dtype)
    with torch.no_grad():
        mod = new_module(x, w, b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                         dilation=dilation, device=device, dtype=dtype)
        y = mod(tx)
    return as_numpy(y)


def conv_transpose_channels_last(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int],
                                 padding: list[int], output_padding: list[int], groups: int, dilation: list[int],
                                 device: str, dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """The functional call on ``x`` and ``w`` made ``.contiguous(memory_format=torch.channels_last)``
    (``channels_last_3d`` for rank 3; rank 1 has none): the same logical NC* tensors, stored
    channels-last; the facts say whether the output is stored channels-last too.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float64; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end. Returns the output ``(N, C_out, *S_out)`` as float64 and
    the dtype and device torch returned it in."""
    import torch

    fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
    tx, tw = (to_tensor(a, device=device, dtype=dtype) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype)
    with torch.no_grad():
        y = getattr(torch.nn.functional, f"conv_transpose{x.ndim - 2}d")(
            tx.contiguous(memory_format=fmt), tw.contiguous(memory_format=fmt), tb, stride=stride, padding=padding,
            output_padding=output_padding, groups=groups, dilation=dilation)
    out, facts = as_numpy(y)
    return out, {**facts, "memory_format": str(fmt).replace("torch.", ""),
                 "output_is_channels_last": y.is_contiguous(memory_format=fmt)}


def conv_transpose_module_channels_last(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int],
                                        padding: list[int], output_padding: list[int], groups: int,
                                        dilation: list[int], device: str,
                                        dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """``nn.ConvTranspose{n}d`` moved ``.to(memory_format=torch.channels_last[_3d])`` (its weight
    stored channels-last) called on ``x`` stored channels-last.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float64; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end. Returns the output ``(N, C_out, *S_out)`` as float64 and
    the dtype and device torch returned it in."""
    import torch

    fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
    tx = to_tensor(x, device=device, dtype=dtype)
    with torch.no_grad():
        mod = new_module(x, w, b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                         dilation=dilation, device=device, dtype=dtype)
        y = mod.to(memory_format=fmt)(tx.contiguous(memory_format=fmt))
    out, facts = as_numpy(y)
    return out, {**facts, "memory_format": str(fmt).replace("torch.", ""),
                 "output_is_channels_last": y.is_contiguous(memory_format=fmt)}


def conv_transpose_compiled(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int],
                            padding: list[int], output_padding: list[int], groups: int, dilation: list[int],
                            device: str, dtype: str, backend: str, dynamic: bool,
                            fullgraph: bool) -> tuple[np.ndarray, dict[str, object]]:
    """The functional call compiled by ``torch.compile(backend=..., dynamic=..., fullgraph=...)``
    (one compiled function per static signature, :func:`compiled_conv_transpose`), run under
    Dynamo recompile limits raised so far that a hit is an error, never a silent eager fallback.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float64; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end. Returns the output ``(N, C_out, *S_out)`` as float64 and
    the dtype and device torch returned it in."""
    import torch

    tx, tw = (to_tensor(a, device=device, dtype=dtype) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype)
    cf = compiled_conv_transpose(x.ndim - 2, b is not None, tuple(stride), tuple(padding), tuple(output_padding),
                                 groups, tuple(dilation), (tuple(x.shape), tuple(w.shape)), device, dtype, backend,
                                 dynamic, fullgraph)
    limits = {"recompile_limit": 1_000_000, "accumulated_recompile_limit": 1_000_000,
              "fail_on_recompile_limit_hit": True}
    with torch.no_grad(), torch._dynamo.config.patch(**limits):
        y = cf(tx, tw) if tb is None else cf(tx, tw, tb)
    return as_numpy(y)


def conv_transpose_autocast_bf16(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int],
                                 padding: list[int], output_padding: list[int], groups: int, dilation: list[int],
                                 device: str, dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """The functional call under ``torch.autocast(device, dtype=torch.bfloat16)``: float32 and
    float16 inputs are computed in bfloat16 (the returned ``dtype`` fact is the compute dtype),
    float64 is left alone.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float64; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end. Returns the output ``(N, C_out, *S_out)`` as float64 and
    the dtype and device torch returned it in."""
    import torch

    tx, tw = (to_tensor(a, device=device, dtype=dtype) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype)
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16):
        y = getattr(torch.nn.functional, f"conv_transpose{x.ndim - 2}d")(
            tx, tw, tb, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
            dilation=dilation)
    return as_numpy(y)


def conv_transpose_deterministic(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int],
                                 padding: list[int], output_padding: list[int], groups: int, dilation: list[int],
                                 device: str, dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """The functional call with ``torch.use_deterministic_algorithms(True)`` (restored afterwards).

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float64; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end. Returns the output ``(N, C_out, *S_out)`` as float64 and
    the dtype and device torch returned it in."""
    import torch

    tx, tw = (to_tensor(a, device=device, dtype=dtype) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.no_grad():
            y = getattr(torch.nn.functional, f"conv_transpose{x.ndim - 2}d")(
                tx, tw, tb, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                dilation=dilation)
    finally:
        torch.use_deterministic_algorithms(before)
    return as_numpy(y)


def conv_transpose_grad(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray, *, wrt: str,
                        stride: list[int], padding: list[int], output_padding: list[int], groups: int,
                        dilation: list[int], device: str, dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """``torch.autograd.grad(y, [target], grad_outputs=g)`` of the functional call, ``requires_grad``
    on x, w (and b); ``wrt`` (``input`` / ``weight`` / ``bias``) names the target; ``g`` is the
    output's cotangent.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, ``g`` ``(N, C_out, *S_out)``, float64; ``padding``
    one int per axis cut from both ends, ``output_padding`` added at the far end. Returns the gradient
    in its tensor's layout (``(N, C_in, *S)``, ``(C_in, C_out/groups, *K)``, ``(C_out,)``) as float64
    and the dtype and device torch returned it in."""
    import torch

    tx, tw = (to_tensor(a, device=device, dtype=dtype, requires_grad=True) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype, requires_grad=True)
    tg = to_tensor(g, device=device, dtype=dtype)
    y = getattr(torch.nn.functional, f"conv_transpose{x.ndim - 2}d")(
        tx, tw, tb, stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    (grad,) = torch.autograd.grad(y, [{"input": tx, "weight": tw, "bias": tb}[wrt]], grad_outputs=tg)
    return as_numpy(grad)


def conv_transpose_module_grad(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray, *, wrt: str,
                               stride: list[int], padding: list[int], output_padding: list[int], groups: int,
                               dilation: list[int], device: str,
                               dtype: str) -> tuple[np.ndarray, dict[str, object]]:
    """``torch.autograd.grad(y, [target], grad_outputs=g)`` of ``nn.ConvTranspose{n}d`` (``w`` and
    ``b`` copied into its parameters) called on ``x`` with ``requires_grad``; ``wrt`` (``input`` /
    ``weight`` / ``bias``) names the target: ``x``, ``mod.weight`` or ``mod.bias``.

    Convention (torch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, ``g`` ``(N, C_out, *S_out)``, float64; ``padding``
    one int per axis cut from both ends, ``output_padding`` added at the far end. Returns the gradient
    in its tensor's layout (``(N, C_in, *S)``, ``(C_in, C_out/groups, *K)``, ``(C_out,)``) as float64
    and the dtype and device torch returned it in."""
    import torch

    tx = to_tensor(x, device=device, dtype=dtype, requires_grad=True)
    tg = to_tensor(g, device=device, dtype=dtype)
    mod = new_module(x, w, b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                     dilation=dilation, device=device, dtype=dtype)
    y = mod(tx)
    (grad,) = torch.autograd.grad(y, [{"input": tx, "weight": mod.weight, "bias": mod.bias}[wrt]], grad_outputs=tg)
    return as_numpy(grad)
