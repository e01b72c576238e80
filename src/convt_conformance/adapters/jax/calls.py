"""JAX's native calls, each written once: the adapter (adapter.py, paths.py) runs these functions,
and a reproducer (repro.py) embeds their source text and calls them with the recorded keyword
arguments written as literals. This module imports only JAX and NumPy; every function imports JAX
itself, so its source runs on its own.

The translation from the canonical convention (the weight regrouped and flipped for
``conv_general_dilated``, the padding mapped) is the adapter's; these functions take the arrays
as ``jax.lax`` takes them.
"""

import numpy as np  # no `from __future__ import annotations`: annotations evaluate as in a script

#: the gradient quantities and the argument each differentiates (``wrt=``)
WRT = {"grad_input": "input", "grad_weight": "weight", "grad_bias": "bias"}

CALLS = ("lax_conv",)
#: the ``jax.lax`` functions ``lax_conv`` makes (its ``api``)
LAX_APIS = ("conv_transpose", "conv_general_dilated")


def lax_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, g: np.ndarray | None = None, *,
             api: str, strides: list[int], padding: str | list[list[int]], rhs_dilation: list[int],
             dimension_numbers: list[str], precision: str | None, dtype: str, device: str,
             feature_group_count: int = 1, transpose_kernel: bool = True, use_consistent_padding: bool = False,
             path: str | None = None, wrt: str | None = None) -> tuple[np.ndarray, dict[str, str]]:
    """``jax.lax.conv_transpose`` or ``jax.lax.conv_general_dilated`` (``api``), plus ``b``
    broadcast over the channel axis and added in the same function, jitted; the arrays put on the
    first ``device`` (``'cpu'``/``'gpu'``) device as ``dtype``. ``precision``: ``'highest'``
    (``lax.Precision.HIGHEST``) or None.

    Convention: the layouts are ``dimension_numbers`` (``['NCHW', 'OIHW', 'NCHW']`` etc.).
    ``conv_transpose``: ``lax.conv_transpose(x, w, strides, padding, rhs_dilation=,
    dimension_numbers=, transpose_kernel=, precision=[, use_consistent_padding=True])``; with
    ``transpose_kernel`` ``w`` is the forward conv's ``OI*`` kernel (JAX swaps I/O and flips it);
    ``padding`` ``'SAME'``/``'VALID'`` or ``[begin, end]`` pairs per spatial axis, the forward
    conv's padding with ``use_consistent_padding``, else (older JAX) those of the stride-dilated
    input. ``conv_general_dilated``: the fractionally strided form ``lax.conv_general_dilated(x,
    w, (1, ...), padding, lhs_dilation=strides, rhs_dilation=, dimension_numbers=,
    feature_group_count=, precision=)``, ``w`` the forward conv's kernel ``(C_out, C_in/groups,
    *K)`` already flipped, ``padding`` the pairs of the stride-dilated input.

    ``path``: ``'eager'`` runs it un-jitted under ``jax.disable_jit()`` (op by op); ``'vmap'``
    as ``jax.jit(jax.vmap(per-example call on x[None], in_axes=(0, None[, None])))``. Each
    configuration's function is built once and kept on this function (jax.jit then compiles once
    per shape and dtype).

    ``wrt`` (``'input'``, ``'weight'``, ``'bias'``), with the cotangent ``g`` in the output's
    layout: ``jax.vjp`` of the jitted function at ``(x, w[, b])``, the pullback jitted (one
    compile serves the three gradients). Returns (the output or that gradient as JAX returns it, in
    NumPy; ``{device: platform}`` of the devices it lives on)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    dn = tuple(dimension_numbers)
    prec = lax.Precision.HIGHEST if precision == "highest" else None
    pads = padding if isinstance(padding, str) else [tuple(p) for p in padding]
    compiled = lax_conv.__dict__.setdefault("compiled", {})
    key = repr((api, strides, pads, rhs_dilation, dn, precision, feature_group_count, transpose_kernel,
                use_consistent_padding, path, b is not None))
    fn = compiled.get(key)
    if fn is None:
        if api == "conv_transpose":
            extra = {"use_consistent_padding": True} if use_consistent_padding else {}

            def conv(x: jax.Array, w: jax.Array) -> jax.Array:
                return lax.conv_transpose(x, w, tuple(strides), pads, rhs_dilation=tuple(rhs_dilation),
                                          dimension_numbers=dn, transpose_kernel=transpose_kernel, precision=prec,
                                          **extra)
        elif api == "conv_general_dilated":
            def conv(x: jax.Array, w: jax.Array) -> jax.Array:
                return lax.conv_general_dilated(x, w, (1,) * (x.ndim - 2), pads, lhs_dilation=tuple(strides),
                                                rhs_dilation=tuple(rhs_dilation), dimension_numbers=dn,
                                                feature_group_count=feature_group_count, precision=prec)
        else:
            raise ValueError(f"not a jax.lax convolution: {api!r}")

        def full(x: jax.Array, w: jax.Array, *b: jax.Array) -> jax.Array:
            y = conv(x, w)
            return y + b[0].reshape((1, -1) + (1,) * (y.ndim - 2)) if b else y

        def eager(*args: jax.Array) -> jax.Array:
            with jax.disable_jit():
                return full(*args)

        def per_example(xi: jax.Array, w: jax.Array, *b: jax.Array) -> jax.Array:
            return full(xi[None], w, *b)[0]

        if path is None:
            fn = jax.jit(full)
        elif path == "eager":
            fn = eager
        elif path == "vmap":
            fn = jax.jit(jax.vmap(per_example, in_axes=(0, None) if b is None else (0, None, None)))
        else:
            raise ValueError(f"not an execution path of lax_conv: {path!r}")
        if len(compiled) >= 4096:
            compiled.clear()
        compiled[key] = fn
    dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
    ndt = jnp.dtype(dtype)
    args = [jax.device_put(np.ascontiguousarray(a, dtype=ndt), dev) for a in ((x, w) if b is None else (x, w, b))]
    if wrt is None:
        y = fn(*args)
    else:
        pull = compiled.get(key + " vjp")
        if pull is None:
            def pullback(g: jax.Array, *args: jax.Array) -> tuple[jax.Array, ...]:
                return jax.vjp(fn, *args)[1](g)

            pull = compiled[key + " vjp"] = jax.jit(pullback)
        y = pull(jax.device_put(np.ascontiguousarray(g, dtype=ndt), dev), *args)[
            {"input": 0, "weight": 1, "bias": 2}[wrt]]
    return np.asarray(jax.device_get(y)), {str(d): d.platform for d in y.devices()}
