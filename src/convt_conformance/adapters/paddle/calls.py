"""PaddlePaddle's native calls, written once: the adapter runs these functions, and a reproducer
script embeds their source and calls them with the recorded keyword arguments.

Each function imports only paddle and NumPy, inside its body (a script gets the function's text).

Convention (Paddle's own for ``paddle.nn.functional.conv{1,2,3}d_transpose`` and
``paddle.nn.Conv{1,2,3}DTranspose``, the canonical one up to the data format): ``x`` ``(N, C_in,
*S)``, ``w`` ``(C_in, C_out/groups, *K)`` applied without a flip, ``b`` ``(C_out,)`` or None, all
float64 NumPy arrays already rounded to ``dtype``. ``data_format`` channels-first (``NCL``,
``NCHW``, ``NCDHW``) passes ``x`` as it is; channels-last (``NLC``, ``NHWC``, ``NDHWC``) moves the
channel axis of ``x`` (and of the cotangent) last before the call and of the output (and of the
input gradient) back to axis 1 after it: the weight layout is the same in both formats.
``padding`` is Paddle's own argument as given: per-axis ints (cut from both ends), per-axis
``(begin, end)`` pairs including ``[0, 0]`` for the batch and channel axes (cut from the full
output), or ``'SAME'`` / ``'VALID'``; ``output_padding`` is added at the far end; ``output_size``
(functional only) is the spatial output size Paddle must return instead. Each returns
``(output, facts)``: the output (or gradient) as float64 in the canonical layout and what Paddle
reports about the tensor it returned (``dtype``, ``place``).
"""

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import paddle

CALLS = ("conv_transpose", "conv_transpose_layer", "conv_transpose_grad", "conv_transpose_layer_grad")
HELPERS = ("to_tensor", "as_numpy", "channels_last", "new_layer")


def channels_last(data_format: str) -> bool:
    """Whether Paddle's ``data_format`` puts the channels last (``NLC``, ``NHWC``, ``NDHWC``)."""
    return data_format.endswith("C")


def to_tensor(a: np.ndarray, *, dtype: str, stop_gradient: bool = True) -> "paddle.Tensor":
    """The float64 NumPy array ``a`` as a CPU paddle tensor cast to ``dtype`` (``stop_gradient``
    False: a leaf ``paddle.grad`` can differentiate with respect to)."""
    import paddle

    t = paddle.to_tensor(np.ascontiguousarray(a), dtype="float64", place=paddle.CPUPlace()).astype(getattr(paddle, dtype))
    t.stop_gradient = stop_gradient
    return t


def as_numpy(t: "paddle.Tensor", *, data_format: str) -> tuple[np.ndarray, dict[str, Any]]:
    """A paddle tensor as float64 NumPy in the canonical layout (channel axis 1 for a
    channels-last ``data_format``; a 1-D tensor is left alone) and its ``dtype`` and ``place``."""
    a = t.astype("float64").numpy()
    if channels_last(data_format) and a.ndim > 2:
        a = np.moveaxis(a, -1, 1)
    return np.ascontiguousarray(a), {"dtype": str(t.dtype).replace("paddle.", ""), "place": str(t.place)}


def new_layer(x_shape: tuple[int, ...], w: np.ndarray, b: np.ndarray | None, *, stride: Any, padding: Any,
              output_padding: Any, groups: int, dilation: Any, data_format: str,
              dtype: str) -> "paddle.nn.Layer":
    """``paddle.nn.Conv{n}DTranspose(C_in, C_out, kernel_size=K, ...)`` (``n`` from the rank of
    ``x_shape``, the canonical ``(N, C_in, *S)``) cast ``.to(dtype=dtype)``, with ``w`` ``(C_in,
    C_out/groups, *K)`` and ``b`` set into its weight and bias (``bias_attr=False`` without one)."""
    import paddle

    rank = len(x_shape) - 2
    layer = getattr(paddle.nn, f"Conv{rank}DTranspose")(
        x_shape[1], w.shape[1] * groups, list(w.shape[2:]), stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation,
        bias_attr=False if b is None else None, data_format=data_format)
    layer.to(dtype=dtype)
    layer.weight.set_value(to_tensor(w, dtype=dtype))
    if b is not None:
        layer.bias.set_value(to_tensor(b, dtype=dtype))
    return layer


def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: Any, padding: Any,
                   output_padding: Any, output_size: Any, groups: int, dilation: Any, data_format: str,
                   dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``paddle.nn.functional.conv{n}d_transpose(x, w, b, ...)`` under ``paddle.no_grad()``.

    Convention: ``x`` ``(N, C_in, *S)`` (moved channels-last for an ``N...C`` ``data_format``),
    ``w`` ``(C_in, C_out/groups, *K)`` without a flip, ``b`` ``(C_out,)`` or None, float64;
    ``padding`` Paddle's argument as given; ``output_padding`` at the far end, or ``output_size``
    (``output_padding`` is then None: Paddle takes one or the other). Returns the output ``(N,
    C_out, *S_out)`` as float64 and Paddle's dtype and place of it."""
    import paddle

    cl = channels_last(data_format)
    tx = to_tensor(np.moveaxis(x, 1, -1) if cl else x, dtype=dtype)
    tw = to_tensor(w, dtype=dtype)
    tb = None if b is None else to_tensor(b, dtype=dtype)
    fn = getattr(paddle.nn.functional, f"conv{x.ndim - 2}d_transpose")
    extra = {"output_size": output_size} if output_size is not None else {"output_padding": output_padding}
    with paddle.no_grad():
        y = fn(tx, tw, tb, stride=stride, padding=padding, groups=groups, dilation=dilation,
               data_format=data_format, **extra)
    return as_numpy(y, data_format=data_format)


def conv_transpose_layer(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: Any, padding: Any,
                         output_padding: Any, groups: int, dilation: Any, data_format: str,
                         dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``paddle.nn.Conv{n}DTranspose`` built with the hyper-parameters, ``w`` and ``b`` set into its
    parameters (:func:`new_layer`), called on ``x`` under ``paddle.no_grad()``.

    Convention: as :func:`conv_transpose` (``x`` canonical, moved channels-last for an ``N...C``
    ``data_format``; the layer's weight is ``(C_in, C_out/groups, *K)`` in both formats). Returns
    the output ``(N, C_out, *S_out)`` as float64 and Paddle's dtype and place of it."""
    import paddle

    cl = channels_last(data_format)
    tx = to_tensor(np.moveaxis(x, 1, -1) if cl else x, dtype=dtype)
    layer = new_layer(x.shape, w, b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                      dilation=dilation, data_format=data_format, dtype=dtype)
    with paddle.no_grad():
        y = layer(tx)
    return as_numpy(y, data_format=data_format)


def conv_transpose_grad(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray, *, wrt: str,
                        stride: Any, padding: Any, output_padding: Any, output_size: Any, groups: int,
                        dilation: Any, data_format: str, dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``paddle.grad([y], [target], grad_outputs=[g])`` of the functional call, x, w (and b) with
    ``stop_gradient=False``; ``wrt`` (``input`` / ``weight`` / ``bias``) names the target; ``g`` is
    the output's cotangent in the canonical layout ``(N, C_out, *S_out)``.

    Convention: as :func:`conv_transpose`. Returns the gradient in its tensor's canonical layout
    (``(N, C_in, *S)``, ``(C_in, C_out/groups, *K)``, ``(C_out,)``) as float64 and Paddle's dtype
    and place of it."""
    import paddle

    cl = channels_last(data_format)
    tx = to_tensor(np.moveaxis(x, 1, -1) if cl else x, dtype=dtype, stop_gradient=False)
    tw = to_tensor(w, dtype=dtype, stop_gradient=False)
    tb = None if b is None else to_tensor(b, dtype=dtype, stop_gradient=False)
    tg = to_tensor(np.moveaxis(g, 1, -1) if cl else g, dtype=dtype)
    fn = getattr(paddle.nn.functional, f"conv{x.ndim - 2}d_transpose")
    extra = {"output_size": output_size} if output_size is not None else {"output_padding": output_padding}
    y = fn(tx, tw, tb, stride=stride, padding=padding, groups=groups, dilation=dilation, data_format=data_format,
           **extra)
    target = {"input": tx, "weight": tw, "bias": tb}[wrt]
    (grad,) = paddle.grad([y], [target], grad_outputs=[tg])
    return as_numpy(grad, data_format=data_format if wrt == "input" else "NCHW")


def conv_transpose_layer_grad(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: np.ndarray, *, wrt: str,
                              stride: Any, padding: Any, output_padding: Any, groups: int, dilation: Any,
                              data_format: str, dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``paddle.grad([y], [target], grad_outputs=[g])`` of ``paddle.nn.Conv{n}DTranspose``
    (:func:`new_layer`) called on ``x`` with ``stop_gradient=False``; ``wrt`` (``input`` /
    ``weight`` / ``bias``) names the target: ``x``, ``layer.weight`` or ``layer.bias``.

    Convention: as :func:`conv_transpose_layer`; ``g`` the output's cotangent in the canonical
    layout. Returns the gradient in its tensor's canonical layout (``(N, C_in, *S)``, ``(C_in,
    C_out/groups, *K)``, ``(C_out,)``) as float64 and Paddle's dtype and place of it."""
    import paddle

    cl = channels_last(data_format)
    tx = to_tensor(np.moveaxis(x, 1, -1) if cl else x, dtype=dtype, stop_gradient=False)
    tg = to_tensor(np.moveaxis(g, 1, -1) if cl else g, dtype=dtype)
    layer = new_layer(x.shape, w, b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                      dilation=dilation, data_format=data_format, dtype=dtype)
    y = layer(tx)
    target = {"input": tx, "weight": layer.weight, "bias": layer.bias}[wrt]
    (grad,) = paddle.grad([y], [target], grad_outputs=[tg])
    return as_numpy(grad, data_format=data_format if wrt == "input" else "NCHW")
