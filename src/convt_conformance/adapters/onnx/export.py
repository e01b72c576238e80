"""The PyTorch -> ONNX export path: ``torch.onnx.export`` of one ``nn.ConvTranspose{n}d``.

Convention: the module is built in PyTorch's (= the canonical) convention: weight
``(C_in, C_out/groups, *K)`` unflipped, symmetric ``padding``, ``output_padding`` as is; the
exporter writes the ONNX graph (a native artifact: its ConvTranspose attributes are read back
for the record), which is then run by onnxruntime like any other model.

Two exporters (torch 2.13, torch/onnx/__init__.py): ``dynamo=False``, the TorchScript-based
exporter (deprecated since 2.9, needs only torch and onnx), and ``dynamo=True``, the
torch.export-based default since 2.9, which needs ``onnxscript`` (and ``onnx_ir``).
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import numpy as np


def dynamo_unavailable() -> str | None:
    """None when the dynamo exporter's dependency (onnxscript) imports, else why not."""
    try:
        import onnxscript  # noqa: F401
    except Exception as exc:
        return (f"torch.onnx.export(dynamo=True) needs onnxscript, which is not importable "
                f"({type(exc).__name__}: {exc}); install the onnx extra")
    return None


def build_module(case, rank: int, x_shape, w: np.ndarray, b: np.ndarray | None):
    """``nn.ConvTranspose{rank}d`` in float32 with the case's weight and bias copied in."""
    import torch

    sym = case.geometry.symmetric_padding
    padding = list(sym) if sym is not None else [p[0] for p in case.padding]
    cls = getattr(torch.nn, f"ConvTranspose{rank}d")
    kwargs = dict(stride=list(case.stride), padding=padding, output_padding=list(case.output_padding),
                  groups=case.groups, dilation=list(case.dilation))
    mod = cls(int(x_shape[1]), int(w.shape[1]) * case.groups, kernel_size=list(w.shape[2:]),
              bias=b is not None, dtype=torch.float32, **kwargs)
    with torch.no_grad():
        mod.weight.copy_(torch.from_numpy(w))
        if b is not None:
            mod.bias.copy_(torch.from_numpy(b))
    return mod.eval(), kwargs


def export(mod, x: np.ndarray, dynamo: bool):
    """The ModelProto ``torch.onnx.export`` writes for ``mod`` called on ``x`` (float32)."""
    import onnx
    import torch

    tx = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            prog = torch.onnx.export(mod, (tx,), dynamo=True, input_names=["X"], output_names=["Y"],
                                     verbose=False)
            return prog.model_proto
        buf = io.BytesIO()
        torch.onnx.export(mod, (tx,), buf, dynamo=False, input_names=["X"], output_names=["Y"])
    return onnx.load_from_string(buf.getvalue())


def graph_summary(model) -> dict[str, Any]:
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
