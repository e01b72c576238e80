"""Reproducer call sources for the mlx adapter (``conformance repro``; see Adapter.repro_call).

A script makes the recorded call with the very function the adapter ran: the source of
convt_conformance/adapters/mlx/calls.py's ``mlx_conv`` (with its helpers: the weight's layout
change and back, the conversions to and from MLX arrays), called with the recorded keyword
arguments (``arguments["call_kwargs"]``: the column, the hyper-parameters, ``wrt`` for a gradient)
written as literals (convt_conformance/adapters/call_source.py), the dtype excepted: that is the
script's ``DTYPE`` (a crashed check's script makes a sibling check's call). A record naming no such
function, a column outside ``MLX_APIS``, a ``wrt`` other than the gradient's, or an argument that
is not a plain literal, gets no script.

Convention: ``mlx_conv`` takes the canonical ``x, w, b`` (and the cotangent ``G``) and moves them
to MLX's channels-last layouts itself; it returns the output or gradient in the canonical layout.
"""

from __future__ import annotations

from typing import Any

from convt_conformance.adapters.call_source import call_source
from convt_conformance.adapters.mlx import calls as mlx_calls


def call_source_of(native_call: dict[str, Any], quantity: str | None) -> str | None:
    """The recorded ``mlx_conv`` call (forward when ``quantity`` is None, else ``mx.vjp`` of it
    for that gradient) as script source leaving ``out`` and ``native_dtype``; None for a record
    that names no call of calls.py or another gradient than ``quantity``."""
    a = native_call.get("arguments")
    kwargs = a.get("call_kwargs") if isinstance(a, dict) else None
    if not isinstance(a, dict) or a.get("call") != "mlx_conv" or not isinstance(kwargs, dict):
        return None
    if kwargs.get("api") not in mlx_calls.MLX_APIS:
        return None
    if kwargs.get("wrt") != (mlx_calls.WRT.get(quantity) if quantity else None):
        return None
    own = {k: v for k, v in kwargs.items() if k != "dtype"}
    src = call_source(mlx_calls, {"call": "mlx_conv", "call_kwargs": own}, result="y, facts",
                      positional=f"x, w, b{', G' if quantity else ', None'}, dtype=DTYPE")
    if src is None:
        return None
    return "\n".join([
        "from typing import Any",
        "",
        "import mlx.core",
        "",
        "print(f'mlx {mlx.core.__version__}')",
        "",
        "",
        src.rstrip(),
        "print(f\"ran on {facts['device']} ({facts['stream']}), result dtype {facts['dtype']}\")",
        "native_dtype, out = facts['dtype'], y",
    ])
