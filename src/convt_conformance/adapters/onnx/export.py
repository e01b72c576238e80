"""The PyTorch -> ONNX export path: ``torch.onnx.export`` of one ``nn.ConvTranspose{n}d``.

Convention: the module is built in PyTorch's (= the canonical) convention: weight
``(C_in, C_out/groups, *K)`` unflipped, symmetric ``padding``, ``output_padding`` as is; the
exporter writes the ONNX graph (a native artifact: its ConvTranspose attributes are read back
for the record), which is then run by onnxruntime like any other model. The calls (module,
export, run) are convt_conformance/adapters/onnx/calls.py's ``torch_export_run``; here: the
module's keyword arguments for a case and what the exporter wrote.

Two exporters (torch 2.13, torch/onnx/__init__.py): ``dynamo=False``, the TorchScript-based
exporter (deprecated since 2.9, needs only torch and onnx), and ``dynamo=True``, the
torch.export-based default since 2.9, which needs ``onnxscript`` (and ``onnx_ir``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convt_conformance.model.case import Case


def dynamo_unavailable() -> str | None:
    """None when the dynamo exporter's dependency (onnxscript) imports, else why not."""
    try:
        import onnxscript  # noqa: F401
    except Exception as exc:
        return (f"torch.onnx.export(dynamo=True) needs onnxscript, which is not importable "
                f"({type(exc).__name__}: {exc}); install the onnx extra")
    return None


def module_kwargs(case: Case) -> dict[str, Any]:
    """``nn.ConvTranspose{n}d``'s hyper-parameters for the case (plain literals): symmetric
    ``padding=p`` (an invalid case with unequal pairs passes the begin values)."""
    sym = case.geometry.symmetric_padding
    padding = list(sym) if sym is not None else [p[0] for p in case.padding]
    return dict(stride=[int(v) for v in case.stride], padding=[int(v) for v in padding],
                output_padding=[int(v) for v in case.output_padding], groups=int(case.groups),
                dilation=[int(v) for v in case.dilation])


def graph_summary(model: Any) -> dict[str, Any]:
    """What the exporter wrote: opset, IR version, node types and the ConvTranspose attributes."""
    from onnx import helper

    conv = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    attrs = {}
    if conv:
        for a in conv[0].attribute:
            v = helper.get_attribute_value(a)
            attrs[a.name] = v.decode() if isinstance(v, bytes) else (list(v) if hasattr(v, "__len__") else v)
    return {"opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
            "ir_version": model.ir_version, "nodes": [n.op_type for n in model.graph.node],
            "conv_transpose_attributes": attrs,
            "graph_inputs": [i.name for i in model.graph.input],
            "initializers": [i.name for i in model.graph.initializer]}
