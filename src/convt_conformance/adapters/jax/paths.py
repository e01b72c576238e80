"""JAX execution paths: the same ``lax`` call reached another way.

Columns (API names with an ``@path`` suffix; translation exactly as in adapter.py, whose call
of calls.py ``lax_conv`` then carries the ``path``; lax_conv wraps the lax call for it):

- ``conv_transpose@eager``, ``conv_general_dilated@eager``: the un-jitted call (and the bias
  ``+``) under ``jax.disable_jit()``: op-by-op dispatch, each primitive executed on its own
  (``lax.conv_transpose`` is then its kernel reversal and ``conv_general_dilated`` run
  separately) instead of one XLA computation.
- ``conv_general_dilated@vmap``: ``jax.jit(jax.vmap(per_example, in_axes=(0, None[, None])))``
  where ``per_example`` takes one example ``(C_in, *S)``, adds a batch axis of 1, makes the
  call and drops it: the batch goes through conv's batching rule; weight and bias broadcast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from convt_conformance.adapters.base import RunOutput

if TYPE_CHECKING:
    from convt_conformance.adapters.jax.adapter import JaxAdapter
    from convt_conformance.loading.cases import Case

PATH_APIS = ("conv_transpose@eager", "conv_general_dilated@eager", "conv_general_dilated@vmap")
DESCRIPTION = {
    "eager": "with jax.disable_jit(): jax.lax.{api} (op-by-op dispatch)",
    "vmap": "jax.jit(jax.vmap(per-example jax.lax.{api} on x[None], in_axes=(0, None)))",
}


def run_path(adapter: JaxAdapter, case: Case, api: str, device: str, dtype: str, x: np.ndarray, w: np.ndarray,
             b: np.ndarray | None) -> RunOutput:
    """The adapter's own translation and call of the base API, made on the path (calls.py
    ``lax_conv`` with ``path``)."""
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
