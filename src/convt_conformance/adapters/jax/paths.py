"""JAX execution paths: the same ``lax`` call reached another way.

Columns (API names with an ``@path`` suffix; translation exactly as in jax_adapter.py, which
builds the lax call and hands it here to be wrapped):

- ``conv_transpose@eager``, ``conv_general_dilated@eager``: the un-jitted call (and the bias
  ``+``) under ``jax.disable_jit()``: op-by-op dispatch, each primitive executed on its own
  (``lax.conv_transpose`` is then its kernel reversal and ``conv_general_dilated`` run
  separately) instead of one XLA computation.
- ``conv_general_dilated@vmap``: ``jax.jit(jax.vmap(per_example, in_axes=(0, None[, None])))``
  where ``per_example`` takes one example ``(C_in, *S)``, adds a batch axis of 1, makes the
  call and drops it: the batch goes through conv's batching rule; weight and bias broadcast.
"""

from __future__ import annotations

from collections.abc import Callable

PATH_APIS = ("conv_transpose@eager", "conv_general_dilated@eager", "conv_general_dilated@vmap")
DESCRIPTION = {
    "eager": "with jax.disable_jit(): jax.lax.{api} (op-by-op dispatch)",
    "vmap": "jax.jit(jax.vmap(per-example jax.lax.{api} on x[None], in_axes=(0, None)))",
}


def wrap(path: str, conv: Callable, with_bias: bool, rank: int) -> Callable:
    """The callable taking ``(x, w)`` or ``(x, w, b)`` for ``path``; ``conv(x, w)`` is the lax call."""
    import jax

    def full(x, w, *b):
        y = conv(x, w)
        return y + b[0].reshape((1, -1) + (1,) * rank) if with_bias else y

    if path == "eager":
        def eager(*args):
            with jax.disable_jit():
                return full(*args)
        return eager
    if path == "vmap":
        def per_example(xi, w, *b):
            return full(xi[None], w, *b)[0]
        return jax.jit(jax.vmap(per_example, in_axes=(0, None, None) if with_bias else (0, None)))
    raise ValueError(f"jax adapter: unknown execution path {path!r}")


def run_path(adapter, case, api: str, device: str, dtype: str, x, w, b):
    """The adapter's own translation and call of the base API, with the call wrapped for the path."""
    base, _, path = api.partition("@")
    if path not in DESCRIPTION:
        raise ValueError(f"jax adapter: unknown execution path {path!r} in api {api!r}")
    adapter._path = path
    try:
        out = type(adapter).run(adapter, case, base, device, dtype, x, w, b)  # not a patched instance attribute
    except Exception as exc:
        failed = getattr(exc, "native_call", None)  # the base call that failed: the path's, as run
        if failed is not None:
            failed.function = DESCRIPTION[path].format(api=base)
            failed.arguments["path"] = path
        raise
    finally:
        adapter._path = None
    out.native_call.function = DESCRIPTION[path].format(api=base)
    out.native_call.arguments["path"] = path
    if path == "vmap":
        out.native_call.arguments["vmap_in_axes"] = [0, None] + ([None] if b is not None else [])
    return out
