"""ONNX's native calls, written once: the adapter (adapter.py, graph.py) runs these functions, and
a reproducer script embeds their source and calls them with the recorded keyword arguments.

Each function imports only onnx, onnxruntime (torch for the export path) and NumPy, inside its
body (a script gets the function's text).

Convention (ONNX ``ConvTranspose``, onnx/defs/nn/defs.cc: the canonical layout): input ``X``
``(N, C, *S)``, weight ``W`` ``(C, M/group, *K)`` applied without a flip, optional bias ``B``
``(M,)`` as the third input; ``attributes`` are the node's, named as ONNX names them (padding as
``pads = [begins..., ends...]``, or ``auto_pad``, or ``output_shape``; ``output_padding`` added at
the far end). The arrays are NumPy arrays in the dtype the model declares (``dtype``; bfloat16
as ml_dtypes'). A run returns ``(Y, facts)``: the output as the runtime returned it, and what
else it reported (providers, onnx.checker's verdict on the model).
"""

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Any

    import onnx
    import onnxruntime
    import torch

CALLS = ("onnxruntime_run", "reference_run", "torch_export_run")
HELPERS = ("conv_transpose_model", "checker_message", "session_options", "session_run", "torch_module",
           "export_model")


def conv_transpose_model(x_shape: tuple[int, ...], w_shape: tuple[int, ...], bias: bool, *,
                         attributes: "dict[str, Any]", opset: int, ir_version: int | None,
                         dtype: str) -> "onnx.ModelProto":
    """A one-node model ``Y = ConvTranspose(X, W[, B])`` with ``attributes``, graph inputs X, W (and
    B) of ``dtype``; the output's dims are symbolic (the runtime computes them). ``ir_version``
    None: the smallest the opset needs."""
    from onnx import TensorProto, helper

    et = getattr(TensorProto, {"float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT",
                               "float64": "DOUBLE"}[dtype])
    inputs = [helper.make_tensor_value_info("X", et, list(x_shape)), helper.make_tensor_value_info("W", et, list(w_shape))]
    names = ["X", "W"]
    if bias:
        inputs.append(helper.make_tensor_value_info("B", et, [int(w_shape[1]) * int(attributes.get("group", 1))]))
        names.append("B")
    node = helper.make_node("ConvTranspose", names, ["Y"], **attributes)
    out = helper.make_tensor_value_info("Y", et, [f"y{i}" for i in range(len(x_shape))])
    graph = helper.make_graph([node], "conv_transpose", inputs, [out])
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets,
                             ir_version=helper.find_min_ir_version_for(opsets) if ir_version is None else ir_version)


def checker_message(model: "onnx.ModelProto") -> str | None:
    """onnx.checker's full check of ``model`` (with strict shape inference): None when it passes,
    else its message."""
    import onnx.checker

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError
        return f"{type(exc).__name__}: {str(exc).strip()[:400]}"
    return None


def session_options(device: str) -> "onnxruntime.SessionOptions":
    """One thread per session; ORT's own logging off (a refused node is raised, not logged too);
    on a GPU no CPU fallback of the node (a "gpu" result must come from the GPU)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    if device == "gpu":
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return so


def session_run(model: "onnx.ModelProto", feeds: list[np.ndarray], device: str) -> tuple[np.ndarray, list[str]]:
    """``onnxruntime.InferenceSession(model).run`` with :func:`session_options`, the CPU or CUDA
    execution provider only, ``feeds`` given to the graph inputs in order; (first output, the
    providers the session took)."""
    import onnxruntime as ort

    providers = ["CUDAExecutionProvider"] if device == "gpu" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(model.SerializeToString(), session_options(device), providers=providers)
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, feeds)))[0], sess.get_providers()


def onnxruntime_run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, attributes: "dict[str, Any]",
                    opset: int, ir_version: int | None, dtype: str,
                    device: str) -> "tuple[np.ndarray, dict[str, Any]]":
    """The one-node ConvTranspose model at ``opset`` (onnx.checker's full check of it in the facts:
    the runtime runs it whatever the checker says) run by onnxruntime on ``device`` (the providers
    it took in the facts).

    Convention (ONNX ConvTranspose, the canonical one): ``x`` ``(N, C, *S)``, ``w`` ``(C, M/group, *K)``
    applied without a flip, ``b`` ``(M,)`` or None, all NumPy arrays of ``dtype``; ``attributes`` the node's:
    ``pads = [begins..., ends...]`` cut from the full output (or ``auto_pad``, or ``output_shape``),
    ``output_padding`` added at its far end. Returns ``Y`` ``(N, M, *S_out)`` as the runtime returned it."""
    model = conv_transpose_model(x.shape, w.shape, b is not None, attributes=attributes, opset=opset,
                                 ir_version=ir_version, dtype=dtype)
    checker = checker_message(model)
    y, providers = session_run(model, [a for a in (x, w, b) if a is not None], device)
    return y, {"providers": providers, "checker": checker, "ir_version": model.ir_version}


def reference_run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, attributes: "dict[str, Any]",
                  opset: int, ir_version: int | None, dtype: str) -> "tuple[np.ndarray, dict[str, Any]]":
    """The one-node ConvTranspose model at ``opset`` (onnx.checker's full check of it in the facts)
    run by the ONNX project's own ``onnx.reference.ReferenceEvaluator`` (NumPy code: the CPU).

    Convention (ONNX ConvTranspose, the canonical one): ``x`` ``(N, C, *S)``, ``w`` ``(C, M/group, *K)``
    applied without a flip, ``b`` ``(M,)`` or None, all NumPy arrays of ``dtype``; ``attributes`` the node's:
    ``pads = [begins..., ends...]`` cut from the full output (or ``auto_pad``, or ``output_shape``),
    ``output_padding`` added at its far end. Returns ``Y`` ``(N, M, *S_out)`` as the runtime returned it."""
    from onnx.reference import ReferenceEvaluator

    model = conv_transpose_model(x.shape, w.shape, b is not None, attributes=attributes, opset=opset,
                                 ir_version=ir_version, dtype=dtype)
    checker = checker_message(model)
    feeds = {"X": x, "W": w, **({"B": b} if b is not None else {})}
    y = ReferenceEvaluator(model).run(None, feeds)[0]
    return np.asarray(y), {"providers": [], "checker": checker, "ir_version": model.ir_version}


def torch_module(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int], padding: list[int],
                 output_padding: list[int], groups: int, dilation: list[int]) -> "torch.nn.Module":
    """``nn.ConvTranspose{n}d`` in float32 (PyTorch's convention, the canonical one: symmetric
    ``padding`` cut from both ends) with ``w`` and ``b`` copied into its parameters, in eval mode."""
    import torch

    mod = getattr(torch.nn, f"ConvTranspose{x.ndim - 2}d")(
        int(x.shape[1]), int(w.shape[1]) * groups, kernel_size=list(w.shape[2:]), bias=b is not None,
        dtype=torch.float32, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
        dilation=dilation)
    with torch.no_grad():
        mod.weight.copy_(torch.from_numpy(w))
        if b is not None:
            mod.bias.copy_(torch.from_numpy(b))
    return mod.eval()


def export_model(mod: "torch.nn.Module", x: np.ndarray, *, dynamo: bool) -> "onnx.ModelProto":
    """The ModelProto ``torch.onnx.export`` writes for ``mod`` called on ``x`` (float32):
    ``dynamo=False`` the TorchScript-based exporter, ``dynamo=True`` the torch.export-based one
    (it needs onnxscript); graph input ``X``, output ``Y``; the exporters' warnings silenced."""
    import io
    import logging
    import warnings

    import onnx
    import torch

    tx = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            prog = torch.onnx.export(mod, (tx,), dynamo=True, input_names=["X"], output_names=["Y"], verbose=False)
            return prog.model_proto
        buf = io.BytesIO()
        torch.onnx.export(mod, (tx,), buf, dynamo=False, input_names=["X"], output_names=["Y"])
    return onnx.load_from_string(buf.getvalue())


def torch_export_run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, stride: list[int], padding: list[int],
                     output_padding: list[int], groups: int, dilation: list[int], dynamo: bool,
                     device: str) -> "tuple[np.ndarray, dict[str, Any]]":
    """``nn.ConvTranspose{n}d`` (float32, :func:`torch_module`) exported by ``torch.onnx.export``
    (:func:`export_model`) and the exported graph run by onnxruntime on ``x`` (:func:`session_run`).

    Convention (PyTorch's, the canonical one): ``x`` ``(N, C_in, *S)``, ``w`` ``(C_in, C_out/groups, *K)``
    applied without a flip, ``b`` ``(C_out,)`` or None, float32; ``padding`` one int per axis cut from both
    ends, ``output_padding`` added at the far end (the exporter writes ONNX's ``pads``). Returns ``Y``
    ``(N, C_out, *S_out)`` as onnxruntime returned it; the facts hold the exported model."""
    mod = torch_module(x, w, b, stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                       dilation=dilation)
    model = export_model(mod, x, dynamo=dynamo)
    y, providers = session_run(model, [x], device)
    return y, {"providers": providers, "model": model}
