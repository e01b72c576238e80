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

from convt_conformance.adapters.call_source import call_source
from convt_conformance.adapters.tinygrad import calls as tg_calls


def _source(native_call: dict, name: str, positional: str, wrt: str | None = None) -> str | None:
    """The recorded call of ``name`` on ``positional``, its output in ``out`` (float64) and the
    dtype tinygrad returned in ``native_dtype``; None for a record that names another call."""
    a = native_call.get("arguments")
    if not isinstance(a, dict) or a.get("call") != name:
        return None
    kwargs = a.get("call_kwargs")
    if not isinstance(kwargs, dict) or "dtype" not in kwargs or kwargs.get("wrt") != wrt:
        return None
    own = {k: v for k, v in kwargs.items() if k != "dtype"}
    src = call_source(tg_calls, {"call": name, "call_kwargs": own}, positional=f"{positional}, dtype=DTYPE",
                      result="out, facts")
    if src is None:
        return None
    return "\n".join([src.rstrip(), "print(f'tinygrad returned: {facts}')", "native_dtype = facts['dtype']"])


def prelude() -> str:
    """Module-level source before the call: the script prints ``tinygrad.__version__``, which
    tinygrad 0.14 does not define; it is set from the installed distribution's metadata."""
    return "\n".join([
        "import importlib.metadata",
        "",
        "import tinygrad",
        "",
        "if not hasattr(tinygrad, '__version__'):  # tinygrad 0.14 has none; the script prints it",
        "    tinygrad.__version__ = importlib.metadata.version('tinygrad')",
    ])


def forward_source(native_call: dict) -> str | None:
    """The recorded ``Tensor.conv_transpose2d`` call on the recorded device (canonical layouts in
    and out). None for a call this module does not know."""
    return _source(native_call, "conv_transpose", "x, w, b")


def gradient_source(native_call: dict, quantity: str) -> str | None:
    """``y.gradient(target, gradient=G)`` of the recorded call; None unless the record's ``wrt`` is
    ``quantity``'s (``grad_weight`` -> ``weight``)."""
    return _source(native_call, "conv_transpose_grad", "x, w, b, G", wrt=quantity.removeprefix("grad_"))
