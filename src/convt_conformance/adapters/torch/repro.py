"""Reproducer call sources for the torch adapter (``conformance repro``; see Adapter.repro_call).

A script makes the recorded call with the very function the adapter ran: the source of the
function of convt_conformance/adapters/torch/calls.py that the record names
(``arguments["call"]``, one of its ``CALLS``; with the helpers it uses), called with the recorded
keyword arguments (``arguments["call_kwargs"]``) written as literals
(convt_conformance/adapters/call_source.py). The dtype is the script's ``DTYPE``: the script of a
check that crashed makes a sibling check's call, in the crashed check's dtype. A record naming
no such function, or holding an argument that is not a plain literal, gets no script.

Convention: torch's own is the canonical one (NC* input and output, weight ``(C_in,
C_out/groups, *K)`` without flip, symmetric ``padding`` cut from both ends, ``output_padding``
at the far end): ``x, w, b`` (and ``G``) go in as they are.
"""

from __future__ import annotations

from convt_conformance.adapters.call_source import recorded_dtype_call
from convt_conformance.adapters.torch import calls as torch_calls

FORWARD = ("conv_transpose", "conv_transpose_module", "conv_transpose_channels_last",
           "conv_transpose_module_channels_last", "conv_transpose_compiled", "conv_transpose_autocast_bf16",
           "conv_transpose_deterministic")
GRADIENT = ("conv_transpose_grad", "conv_transpose_module_grad")


def _setup(native_call: dict) -> list[str]:
    tf32 = bool((native_call.get("precision") or {}).get("cudnn.allow_tf32", False))
    return [
        "import functools  # the compile cache of calls.py",
        "",
        "import torch",
        "",
        f"torch.backends.cudnn.allow_tf32 = {tf32!r}  # as recorded",
        "if PRECISION == 'strict':",
        "    torch.backends.cuda.matmul.allow_tf32 = False",
        "    torch.set_float32_matmul_precision('highest')",
    ]


def _source(native_call: dict, names: tuple[str, ...], positional: str, wrt: str | None = None) -> str | None:
    """The recorded call of one of ``names`` on ``positional``, its output in ``out`` (float64)
    and the dtype torch returned in ``native_dtype``; None for a record that names none."""
    src = recorded_dtype_call(torch_calls, native_call, names, positional, wrt)
    if src is None:
        return None
    return "\n".join([*_setup(native_call), "", "", src.rstrip(), "print(f'torch returned: {facts}')",
                      "native_dtype = facts['dtype']"])


def forward_source(native_call: dict) -> str | None:
    """The recorded forward call (plain or an execution path): NC* in and out, no weight
    transform. None for a call this module does not know."""
    return _source(native_call, FORWARD, "x, w, b")


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """``torch.autograd.grad`` of the recorded call with the cotangent ``G`` (``requires_grad`` on
    x, w (and b), the module's parameters for nn.ConvTranspose); torch's layout is canonical.
    None unless the record's ``wrt`` is ``quantity``'s (``grad_weight`` -> ``weight``)."""
    return _source(native_call, GRADIENT, "x, w, b, G", wrt=quantity.removeprefix("grad_"))
