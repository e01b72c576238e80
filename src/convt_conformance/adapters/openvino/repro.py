"""Reproducer call sources for the openvino adapter (``conformance repro``; see Adapter.repro_call).

A script makes the recorded call with the very function the adapter ran: the source of
convt_conformance/adapters/openvino/calls.py's ``backprop_data_run`` (with the helpers it uses: the
opset module, the CPU core, the one-op model, the tensor conversions), called with the recorded
keyword arguments (``arguments["call_kwargs"]``: the op, its attributes, the opset, the
inference precision hint, the threads) written as literals
(convt_conformance/adapters/call_source.py). The model's dtype is the script's ``DTYPE`` (and the
hint that dtype's): the script of a check that crashed makes a sibling check's call, in its own
dtype. A record naming no such function, or holding an argument that is not a plain literal, gets
no script.

Convention: OpenVINO's data and output layouts are the canonical ones, its filter is canonical
for ConvolutionBackpropData and reshaped (inside the call) for GroupConvolutionBackpropData:
``x, w, b`` go in as they are.
"""

from __future__ import annotations

from convt_conformance.adapters.call_source import call_source
from convt_conformance.adapters.openvino import calls as ov_calls


def forward_source(native_call: dict) -> str | None:
    """The recorded one-op model compiled for the CPU plugin and inferred; None for a record that
    names no call of calls.py."""
    a = native_call.get("arguments")
    if not isinstance(a, dict) or a.get("call") != "backprop_data_run" or not isinstance(a.get("call_kwargs"), dict):
        return None
    kwargs = a["call_kwargs"]
    if "dtype" not in kwargs:
        return None
    own = {k: v for k, v in kwargs.items() if k not in ("dtype", "inference_precision")}
    src = call_source(ov_calls, {"call": "backprop_data_run", "call_kwargs": own}, result="y, facts",
                      positional="x, w, b, dtype=DTYPE, inference_precision=ELEMENT_TYPES[DTYPE]")
    if src is None:
        return None
    return "\n".join([
        "import functools  # the Core cache of calls.py",
        "",
        "import openvino",
        "",
        "print(f'openvino {openvino.__version__}')",
        f"ELEMENT_TYPES = {ov_calls.ELEMENT_TYPES!r}",
        "",
        "",
        src.rstrip(),
        "print(f\"compiled INFERENCE_PRECISION_HINT: {facts['INFERENCE_PRECISION_HINT']}; runtime nodes: \"",
        "      f\"{facts['runtime_nodes']}\")",
        "native_dtype, out = facts['dtype'], y",
    ])
