"""Reproducer call sources for the tinygrad adapter (``conformance repro``; see Adapter.repro_call).

A script makes the recorded call with the very function the adapter ran: the source of
convt_conformance/adapters/tinygrad/calls.py's ``conv_transpose`` or ``conv_transpose_grad`` (with
the functions of calls.py it uses), called with the recorded keyword arguments (``arguments["call_kwargs"]``:
the hyper-parameters, the padding in the recorded form, the tinygrad device) written as literals
(convt_conformance/adapters/call_source.py). The dtype is the script's ``DTYPE``. A record naming
no such function, or holding an argument that is not a plain literal, gets no script.

Convention: tinygrad's layouts are the canonical ones and its weight is unflipped: ``x, w, b``
(and ``G``) go in as they are; the recorded ``padding`` is already in tinygrad's form (for the
pairs form: the last axis first).
"""

from __future__ import annotations

from convt_conformance.adapters.call_source import recorded_dtype_call
from convt_conformance.adapters.tinygrad import calls as tg_calls


def _source(native_call: dict, name: str, positional: str, wrt: str | None = None) -> str | None:
    """The recorded call of ``name`` on ``positional``, its output in ``out`` (float64) and the
    dtype tinygrad returned in ``native_dtype``; None for a record that names another call."""
    src = recorded_dtype_call(tg_calls, native_call, (name,), positional, wrt)
    if src is None:
        return None
    return "\n".join([src.rstrip(), "print(f'tinygrad returned: {facts}')", "native_dtype = facts['dtype']"])


def forward_source(native_call: dict) -> str | None:
    """The recorded ``Tensor.conv_transpose2d`` call on the recorded device (canonical layouts in
    and out). None for a call this module does not know."""
    return _source(native_call, "conv_transpose", "x, w, b")


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """``y.gradient(target, gradient=G)`` of the recorded call; None unless the record's ``wrt`` is
    ``quantity``'s (``grad_weight`` -> ``weight``)."""
    return _source(native_call, "conv_transpose_grad", "x, w, b, G", wrt=quantity.removeprefix("grad_"))
