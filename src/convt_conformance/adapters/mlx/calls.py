"""MLX's native calls, written once: the adapter runs these functions, and a reproducer script
embeds their source and calls them with the recorded keyword arguments.

Each function imports only MLX and NumPy, inside its body (a script gets the function's text).

Convention (MLX's, channels-last): input ``(N, *S, C_in)``; the weight of
``mlx.core.conv_transpose{1,2,3}d``, ``mlx.core.conv_general`` and ``mlx.nn.ConvTranspose{1,2,3}d``
is ``(C_out, *K, C_in/groups)``; output ``(N, *S_out, C_out)``. ``conv_transpose{n}d`` and the layers
apply the weight without a flip; symmetric ``padding`` (one int per axis) is cut from both ends of
the full output, ``output_padding`` added at its far end. ``conv_general`` is the forward
convolution over the stride-dilated input (``input_dilation``), with per-side pads ``(low, high)``
of that input and ``flip=True`` (the convolution operator, MLX reverses the kernel itself): with
``input_dilation = stride``, window stride 1 and pads ``(d*(k-1)-begin, d*(k-1)-end+output_padding)``
it is the transposed convolution of the canonical weight permuted to ``(C_out, *K, C_in/g)``.

``x, w, b`` (and the cotangent ``g``) are the canonical float64 NumPy arrays already rounded to
``dtype``: input ``(N, C_in, *S)``, weight ``(C_in, C_out/groups, *K)``, bias ``(C_out,)``,
cotangent ``(N, C_out, *S_out)``. The layout changes to MLX's (and a gradient's back) are pure
permutations and reshapes, done here so that a reproducer makes exactly the adapter's call. Every
call runs inside ``mx.stream(mx.cpu)`` and evaluates its result with ``mx.eval`` (MLX is lazy: a
refusal surfaces there, inside the call).
"""

from typing import TYPE_CHECKING

import numpy as np  # no `from __future__ import annotations`: annotations evaluate as in a script

if TYPE_CHECKING:
    from typing import Any

    import mlx.core

CALLS = ("mlx_conv",)
HELPERS = ("native_weight", "canonical_weight", "to_mx", "to_numpy", "dtype_name")

#: the forward columns ``mlx_conv`` makes (its ``api``)
MLX_APIS = ("conv_transpose", "conv_general", "ConvTranspose")
#: the gradient quantities and the argument each differentiates (``wrt=``)
WRT = {"grad_input": "input", "grad_weight": "weight", "grad_bias": "bias"}


def native_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """Canonical ``(C_in, C_out/g, *K)`` -> MLX's ``(C_out, *K, C_in/g)`` (group-major output
    channels), a reshape and a transpose: no flip, no arithmetic. When ``groups`` does not divide
    ``C_in`` (an invalid case MLX is to reject) the weight is permuted as for one group."""
    if w.ndim < 2:
        return w
    cin, cog, k = w.shape[0], w.shape[1], w.shape[2:]
    g = groups if groups >= 1 and cin % groups == 0 else 1
    wg = w.reshape(g, cin // g, cog, *k)
    return np.ascontiguousarray(np.moveaxis(wg, 1, -1).reshape(g * cog, *k, cin // g))


def canonical_weight(wn: np.ndarray, groups: int) -> np.ndarray:
    """Inverse of :func:`native_weight`: MLX's ``(C_out, *K, C_in/g)`` -> canonical
    ``(C_in, C_out/g, *K)``. A pure layout change."""
    cout, k, cig = wn.shape[0], wn.shape[1:-1], wn.shape[-1]
    wg = wn.reshape(groups, cout // groups, *k, cig)
    return np.ascontiguousarray(np.moveaxis(wg, -1, 1).reshape(groups * cig, cout // groups, *k))


def to_mx(a: np.ndarray, dtype: str) -> "mlx.core.array":
    """``a`` (float64 values representable in ``dtype``) as an MLX array of ``dtype``, the dtype
    given to ``mx.array`` (without it MLX makes float32 of a float64 NumPy array); float16 and
    bfloat16 go through float32 (exact for values of those dtypes)."""
    import mlx.core as mx

    source = np.float64 if dtype == "float64" else np.float32
    return mx.array(np.ascontiguousarray(a, dtype=source), dtype=getattr(mx, dtype))


def dtype_name(a: "mlx.core.array") -> str:
    """The dtype name of an MLX array (``float32``, ``bfloat16``, ...)."""
    return str(a.dtype).rsplit(".", 1)[-1]


def to_numpy(a: "mlx.core.array") -> np.ndarray:
    """The MLX array's values as float64 (bfloat16 widened to float32 first, exactly)."""
    import mlx.core as mx

    if a.dtype == mx.bfloat16:
        a = a.astype(mx.float32)
    return np.array(a).astype(np.float64)


def mlx_conv(x: np.ndarray, w: np.ndarray, b: "np.ndarray | None" = None, g: "np.ndarray | None" = None, *,
             api: str, stride: "list[int]", padding: "list[Any]", dilation: "list[int]",
             output_padding: "list[int] | None" = None, input_dilation: "list[int] | None" = None, groups: int = 1,
             dtype: str, wrt: "str | None" = None) -> "tuple[np.ndarray, dict[str, Any]]":
    """One MLX transposed convolution on the CPU stream, evaluated: ``api``

    - ``conv_transpose``: ``mx.conv_transpose{n}d(x, w, stride, padding, dilation, output_padding,
      groups)`` (``padding`` one int per axis, cut from both ends; no bias argument);
    - ``conv_general``: ``mx.conv_general(x, w, stride, (low, high), kernel_dilation=dilation,
      input_dilation=input_dilation, groups=groups, flip=True)`` (``padding`` ``[low, high]`` lists
      of the stride-dilated input; no bias argument);
    - ``ConvTranspose``: ``mlx.nn.ConvTranspose{n}d(in_channels, out_channels, kernel_size, stride,
      padding, dilation, output_padding, bias=b is not None)`` whose parameters are replaced with
      ``Module.update({"weight": w, "bias": b})`` (MLX's layout), called on ``x``.

    ``padding``: ints (one per axis), or for ``conv_general`` the ``[low, high]`` lists. Rank 1
    takes ints, ranks 2 and 3 tuples. ``x, w, b, g`` are canonical float64 (the module
    docstring): moved channels-last and to MLX's weight layout here, the output moved back to
    ``(N, C_out, *S_out)``. ``wrt`` (``'input'``, ``'weight'``, ``'bias'``): ``mx.vjp`` of the same
    call at ``(x, w[, b])`` with the cotangent ``g`` (moved channels-last), the gradient returned in
    its canonical layout (the weight's through :func:`canonical_weight`). Returns (the output or
    gradient as float64; facts: ``dtype`` of MLX's result, ``device`` / ``stream`` it ran on)."""
    import mlx.core as mx
    import mlx.nn as nn

    rank = x.ndim - 2

    def hp(v: "list[int]") -> "int | tuple[int, ...]":
        return int(v[0]) if rank == 1 and len(v) == 1 else tuple(int(i) for i in v)

    with mx.stream(mx.cpu):
        xn = to_mx(np.moveaxis(x, 1, -1), dtype)
        wn = to_mx(native_weight(w, groups), dtype)
        args = [xn, wn] if b is None else [xn, wn, to_mx(b, dtype)]
        if api == "conv_transpose":
            fn = getattr(mx, f"conv_transpose{rank}d")

            def call(*a: "mlx.core.array") -> "mlx.core.array":
                return fn(a[0], a[1], hp(stride), hp(padding), hp(dilation), hp(output_padding or [0] * rank),
                          groups)
        elif api == "conv_general":
            pads = (list(padding[0]), list(padding[1]))

            def call(*a: "mlx.core.array") -> "mlx.core.array":
                return mx.conv_general(a[0], a[1], stride=list(stride), padding=pads, kernel_dilation=list(dilation),
                                       input_dilation=list(input_dilation or [1] * rank), groups=groups, flip=True)
        elif api == "ConvTranspose":
            layer = getattr(nn, f"ConvTranspose{rank}d")(
                int(x.shape[1]), int(wn.shape[0]), hp(list(wn.shape[1:-1])), stride=hp(stride), padding=hp(padding),
                dilation=hp(dilation), output_padding=hp(output_padding or [0] * rank), bias=b is not None)

            def call(*a: "mlx.core.array") -> "mlx.core.array":
                layer.update({"weight": a[1], **({"bias": a[2]} if len(a) > 2 else {})})
                return layer(a[0])
        else:
            raise ValueError(f"not an MLX transposed convolution: {api!r}")
        if wrt is None:
            y = call(*args)
            mx.eval(y)
            out = np.moveaxis(to_numpy(y), -1, 1)
        else:
            index = {"input": 0, "weight": 1, "bias": 2}[wrt]
            if g is None:
                raise ValueError(f"wrt={wrt!r} needs the cotangent g")
            cot = to_mx(np.moveaxis(g, 1, -1), dtype)
            _, grads = mx.vjp(call, args, [cot])
            y = grads[index]
            mx.eval(y)
            out = to_numpy(y)
            if wrt == "input":
                out = np.moveaxis(out, -1, 1)
            elif wrt == "weight":
                out = canonical_weight(out, groups)
        device = str(mx.default_device())
        stream = str(mx.default_stream(mx.default_device()))
    return out, {"dtype": dtype_name(y), "device": device, "stream": stream}
