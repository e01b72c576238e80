"""Reproducer call sources for the paddle adapter (``conformance repro``; see Adapter.repro_call).

A script makes the recorded call with the very function the adapter ran: the source of the
function of convt_conformance/adapters/paddle/calls.py that the record names
(``arguments["call"]``, one of its ``CALLS``; with the helpers it uses), called with the recorded
keyword arguments (``arguments["call_kwargs"]``) written as literals
(convt_conformance/adapters/call_source.py). The dtype is the script's ``DTYPE``. A record naming
no such function, or holding an argument that is not a plain literal, gets no script.

Convention: the functions take the canonical arrays (``x`` ``(N, C_in, *S)``, ``w`` ``(C_in,
C_out/groups, *K)`` without a flip, ``G`` ``(N, C_out, *S_out)``) and move the channel axis
themselves for a channels-last ``data_format``: ``x, w, b`` (and ``G``) go in as they are.
"""

from __future__ import annotations

from convt_conformance.adapters.call_source import recorded_dtype_call
from convt_conformance.adapters.paddle import calls as pd_calls

FORWARD = ("conv_transpose", "conv_transpose_layer")
GRADIENT = ("conv_transpose_grad", "conv_transpose_layer_grad")


def _setup() -> list[str]:
    return [
        "import os",
        "from typing import Any",
        "",
        "os.environ.setdefault('GLOG_minloglevel', '2')",
        "import paddle",
        "",
        "paddle.set_device('cpu')",
        "paddle.base.core.set_num_threads(1)",
        "print(f'paddle {paddle.__version__}')",
    ]


def _source(native_call: dict, names: tuple[str, ...], positional: str, wrt: str | None = None) -> str | None:
    """The recorded call of one of ``names`` on ``positional``, its output in ``out`` (float64,
    canonical layout) and the dtype Paddle returned in ``native_dtype``; None for a record that
    names none."""
    src = recorded_dtype_call(pd_calls, native_call, names, positional, wrt)
    if src is None:
        return None
    return "\n".join([*_setup(), "", "", src.rstrip(), "print(f'paddle returned: {facts}')",
                      "native_dtype = facts['dtype']"])


def forward_source(native_call: dict) -> str | None:
    """The recorded functional / layer call (canonical arrays in and out; the function moves the
    channels for a channels-last data_format). None for a call this module does not know."""
    return _source(native_call, FORWARD, "x, w, b")


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """``paddle.grad`` of the recorded call with the cotangent ``G`` (x, w (and b), or the layer's
    parameters, with ``stop_gradient=False``). None unless the record's ``wrt`` is ``quantity``'s
    (``grad_weight`` -> ``weight``)."""
    return _source(native_call, GRADIENT, "x, w, b, G", wrt=quantity.removeprefix("grad_"))
