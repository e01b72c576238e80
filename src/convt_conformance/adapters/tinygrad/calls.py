"""tinygrad's native calls, written once: the adapter runs these functions, and a reproducer script
embeds their source and calls them with the recorded keyword arguments.

Each function imports only tinygrad and NumPy, inside its body (a script gets the function's text).

Convention (``tinygrad.Tensor.conv_transpose2d``, rank-generic despite its name): ``x`` ``(N, C_in,
*S)``, ``w`` ``(C_in, C_out/groups, *K)`` applied without a flip (tinygrad flips it itself to run
the equivalent convolution), ``b`` ``(C_out,)`` or None, all float64 NumPy arrays already rounded to
``dtype``; ``stride``, ``dilation``, ``output_padding`` one int per spatial axis; ``padding`` in one
of tinygrad's three forms, passed as given: an int (every side of every axis), one int per axis
(cut from both ends), or ``2 * rank`` ints ``(begin_last, end_last, ..., begin_first, end_first)``,
the LAST axis first like ``torch.nn.functional.pad``; ``output_padding`` added at the far end.
``device`` is a tinygrad device name (``CPU`` or ``PYTHON``): every tensor is created on it
explicitly, so tinygrad's default device is never read or set. Each call returns ``(output,
facts)``: the output (or gradient) as float64 in tinygrad's layout (the canonical one) and what
tinygrad reports about the tensor it returned (``dtype``, ``device``).
"""

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinygrad import Tensor

CALLS = ("conv_transpose", "conv_transpose_grad")
HELPERS = ("to_tensor", "as_numpy")

#: tinygrad's dtype names (``tinygrad.dtypes.<name>``) of the dtypes
DTYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64"}


@functools.lru_cache(maxsize=1)
def device_choice() -> "tuple[str, str | None]":
    """The tinygrad device the checks run on here and why: ``("CPU", None)`` when tinygrad's CPU
    device opens (it compiles kernels with ``clang``), else ``("PYTHON", <the CPU device's error in
    tinygrad's words>)``: the PYTHON device interprets the same kernels in Python. Asked once per
    process; ``tinygrad.Device.DEFAULT`` is neither read nor set (reading it selects a device and
    writes ``DEV`` into the environment of the process)."""
    from tinygrad import Device

    try:
        Device["CPU"]
    except Exception as exc:  # tinygrad's own failure to open the device, e.g. no clang
        return "PYTHON", f"{type(exc).__name__}: {exc}"
    return "CPU", None


def emulated_dtypes(device: str) -> "list[str]":
    """The dtypes (of float16, bfloat16, float32, float64) that ``device``'s renderer does not list
    as supported: tinygrad emulates those in other dtypes (tinygrad/codegen/decomp/dtype.py); the
    PYTHON device lists float16 only on Python >= 3.12."""
    from tinygrad import Device, dtypes

    supported = Device[device].renderer.supported_dtypes()
    return [name for name in DTYPES if getattr(dtypes, name) not in supported]


def to_tensor(a: np.ndarray, *, device: str, dtype: str) -> "Tensor":
    """The float64 NumPy array ``a`` (values representable in ``dtype``) as a tinygrad Tensor of
    ``dtype`` on ``device``: float16, float32 and float64 from NumPy arrays of that dtype;
    bfloat16 (no NumPy dtype) from float32, cast by tinygrad (exact for bfloat16 values)."""
    from tinygrad import Tensor, dtypes

    if dtype == "bfloat16":
        return Tensor(np.ascontiguousarray(a, dtype=np.float32), device=device).cast(dtypes.bfloat16)
    return Tensor(np.ascontiguousarray(a, dtype=np.dtype(dtype)), device=device)


def as_numpy(y: "Tensor") -> "tuple[np.ndarray, dict[str, object]]":
    """``y`` realized and read back as float64 (``Tensor.numpy``; a bfloat16 tensor comes back as
    float32, exactly), with the dtype and device tinygrad reports for it."""
    from tinygrad import dtypes

    names = {dtypes.float16: "float16", dtypes.bfloat16: "bfloat16", dtypes.float32: "float32",
             dtypes.float64: "float64"}
    return np.asarray(y.numpy(), dtype=np.float64), {"dtype": names.get(y.dtype, str(y.dtype)),
                                                     "device": str(y.device)}


def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int],
                   padding: "int | list[int]", dilation: list[int], output_padding: list[int], groups: int,
                   device: str, dtype: str) -> "tuple[np.ndarray, dict[str, object]]":
    """``Tensor.conv_transpose2d(weight, bias, groups, stride, dilation, padding, output_padding)``
    on ``device`` in ``dtype``.

    Convention (tinygrad's, the canonical one but for the flat padding form): ``x`` ``(N, C_in,
    *S)``, ``w`` ``(C_in, C_out/groups, *K)`` unflipped, ``b`` ``(C_out,)`` or None; ``padding`` an
    int, one int per axis (cut from both ends) or ``2 * rank`` ints, last axis first, ``(begin,
    end)`` per axis; ``output_padding`` at the far end. Returns ``Y`` ``(N, C_out, *S_out)`` as
    float64 and the facts (dtype, device)."""
    tx, tw = (to_tensor(a, device=device, dtype=dtype) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype)
    y = tx.conv_transpose2d(tw, tb, groups=groups, stride=stride, dilation=dilation,
                            padding=padding, output_padding=output_padding)
    return as_numpy(y)


def conv_transpose_grad(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray, *, wrt: str,
                        stride: list[int], padding: "int | list[int]", dilation: list[int],
                        output_padding: list[int], groups: int, device: str,
                        dtype: str) -> "tuple[np.ndarray, dict[str, object]]":
    """``y.gradient(target, gradient=g)`` of ``y = x.conv_transpose2d(w, b, ...)``: tinygrad's
    reverse-mode autodiff (``Tensor.gradient``, the vector-Jacobian product with the cotangent
    ``g``; tinygrad has no ``requires_grad`` flag to set). ``wrt`` (``input`` / ``weight`` /
    ``bias``) names the target.

    Convention as :func:`conv_transpose`; ``g`` ``(N, C_out, *S_out)`` float64 in ``dtype``. Returns
    the gradient in its tensor's layout (``(N, C_in, *S)``, ``(C_in, C_out/groups, *K)``,
    ``(C_out,)``) as float64 and the dtype and device tinygrad returned it in."""
    tx, tw = (to_tensor(a, device=device, dtype=dtype) for a in (x, w))
    tb = None if b is None else to_tensor(b, device=device, dtype=dtype)
    tg = to_tensor(g, device=device, dtype=dtype)
    y = tx.conv_transpose2d(tw, tb, groups=groups, stride=stride, dilation=dilation,
                            padding=padding, output_padding=output_padding)
    target = {"input": tx, "weight": tw, "bias": tb}[wrt]
    if target is None:
        raise ValueError("wrt='bias' of a call without a bias")
    (grad,) = y.gradient(target, gradient=tg)
    return as_numpy(grad)
