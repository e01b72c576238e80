"""Reproducer call sources for the onnx adapter (``conformance repro``; see Adapter.repro_call).

A script makes the recorded call with the very function the adapter ran: the source of the
function of convt_conformance/adapters/onnx/calls.py that the record names (``arguments["call"]``:
``onnxruntime_run``, ``reference_run`` or ``torch_export_run``; with the helpers it uses: the
one-node model, onnx.checker, the session options), called with the recorded keyword arguments
(``arguments["call_kwargs"]``: the node's attributes, opset, IR version, device, the exporter)
written as literals (convt_conformance/adapters/call_source.py). The model's dtype is the script's
``DTYPE``: the script of a check that crashed makes a sibling check's call, in its own dtype. A
record naming no such function, or holding an argument that is not a plain literal, gets no
script.

Convention (convt_conformance/adapters/onnx/graph.py): ONNX ConvTranspose is the canonical layout:
input ``X`` ``(N, C, *S)``, weight ``W`` ``(C, M/group, *K)`` unflipped, optional bias ``B``
``(M,)``; ``x, w, b`` go in as they are, in the dtype (float32 for the export path). As the
adapter does, a valid configuration whose model onnx.checker refuses is an error even when the
runtime runs it.
"""

from __future__ import annotations

from convt_conformance.adapters.call_source import call_source
from convt_conformance.adapters.onnx import calls as onnx_calls

RUNS = {"onnxruntime_run": "onnxruntime", "reference_run": "onnx.reference.ReferenceEvaluator"}


def forward_source(native_call: dict) -> str | None:
    """The recorded one-node model run (``ort.*``, ``ref.*``) or the export path."""
    a = native_call.get("arguments")
    if not isinstance(a, dict) or not isinstance(a.get("call_kwargs"), dict):
        return None
    name, kwargs = a.get("call"), a["call_kwargs"]
    if not isinstance(name, str):
        return None
    if name in RUNS and "dtype" in kwargs:
        return _model_source(name, kwargs)
    if name == "torch_export_run":
        return _export_source(kwargs)
    return None


def _model_source(name: str, kwargs: dict) -> str | None:
    own = {k: v for k, v in kwargs.items() if k != "dtype"}
    src = call_source(onnx_calls, {"call": name, "call_kwargs": own}, result="y, facts",
                      positional="x.astype(NP_DTYPE), w.astype(NP_DTYPE), None if b is None else b.astype(NP_DTYPE), "
                                 "dtype=DTYPE")
    if src is None:
        return None
    return "\n".join([
        "import onnx",
        "",
        "print(f'onnx {onnx.__version__}')",
        "",
        "",
        src.rstrip(),
        "print(f\"onnx.checker: {facts['checker'] or 'ok'}; providers: {facts['providers']}\")",
        "if facts['checker'] and not EXPECT_ERROR:  # the adapter's rule: a refused valid model is an error",
        f"    raise RuntimeError(f\"onnx.checker refused a valid configuration ({RUNS[name]} ran it): "
        "{facts['checker']}\")",
        "native_dtype, out = str(np.asarray(y).dtype), np.asarray(y).astype(np.float64)",
    ])


def _export_source(kwargs: dict) -> str | None:
    src = call_source(onnx_calls, {"call": "torch_export_run", "call_kwargs": kwargs}, result="y, facts",
                      positional="x.astype(np.float32), w.astype(np.float32), "
                                 "None if b is None else b.astype(np.float32)")
    if src is None:
        return None
    return "\n".join([
        "import onnx",
        "import torch",
        "",
        "print(f'onnx {onnx.__version__}, torch {torch.__version__}')",
        "",
        "",
        src.rstrip(),
        "conv = [n for n in facts['model'].graph.node if n.op_type == 'ConvTranspose']",
        "if conv:",
        "    print('exported ConvTranspose attributes:',",
        "          {at.name: onnx.helper.get_attribute_value(at) for at in conv[0].attribute})",
        "print(f\"providers: {facts['providers']}\")",
        "native_dtype, out = str(np.asarray(y).dtype), np.asarray(y).astype(np.float64)",
    ])
