"""Reproducer call sources for the onnx adapter (``conformance repro``; see Adapter.repro_call).

Convention (convt_conformance/adapters/onnx/graph.py): ONNX ConvTranspose is the canonical layout: input ``X``
``(N, C, *S)``, weight ``W`` ``(C, M/group, *K)`` unflipped, optional bias ``B`` ``(M,)``; padding
as the recorded attributes (``pads = [begins..., ends...]``, or ``auto_pad``, or ``output_shape``),
``output_padding`` as is. The ``ort.*`` / ``ref.*`` scripts build the same one-node model with
``onnx.helper`` (attributes exactly as recorded, the recorded opset and IR version), run
``onnx.checker`` (full check) as the adapter does, and run it with onnxruntime (the adapter's
session options) or ``onnx.reference.ReferenceEvaluator``; the ``torch-export`` / ``torch-dynamo``
scripts build ``nn.ConvTranspose{n}d`` in float32, export it with ``torch.onnx.export`` and run
the exported graph in onnxruntime.
"""

from __future__ import annotations

import re

_RUNTIME = re.compile(r"(onnxruntime\.InferenceSession|onnx\.reference\.ReferenceEvaluator)"
                      r"\(ConvTranspose, opset (\d+)\)\.run")
_EXPORT = re.compile(r"torch\.onnx\.export\(nn\.ConvTranspose([123])d, dynamo=(True|False)\) -> "
                     r"onnxruntime\.InferenceSession\.run")
_ATTRS = ("kernel_shape", "strides", "dilations", "output_padding", "group", "pads", "auto_pad", "output_shape")
_ELEM = {"float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT", "float64": "DOUBLE"}

_SESSION = [
    "def ort_run(model, feeds):",
    "    \"\"\"onnxruntime with the adapter's session options (1 thread; on a GPU no CPU fallback).\"\"\"",
    "    import onnxruntime as ort",
    "    so = ort.SessionOptions()",
    "    so.intra_op_num_threads = 1",
    "    so.inter_op_num_threads = 1",
    "    so.log_severity_level = 4",
    "    if DEVICE == 'gpu':",
    "        so.add_session_config_entry('session.disable_cpu_ep_fallback', '1')",
    "    providers = ['CUDAExecutionProvider'] if DEVICE == 'gpu' else ['CPUExecutionProvider']",
    "    sess = ort.InferenceSession(model.SerializeToString(), so, providers=providers)",
    "    print(f'onnxruntime {ort.__version__}, providers {sess.get_providers()}')",
    "    return sess.run(None, dict(zip([i.name for i in sess.get_inputs()], feeds)))[0]",
    "",
]


def forward_source(native_call: dict) -> str | None:
    """The recorded one-node model run (``ort.*``, ``ref.*``) or the export path."""
    fn = native_call.get("function", "")
    a = native_call.get("arguments") or {}
    m = _RUNTIME.fullmatch(fn)
    if m is not None:
        return _model_source(m[1] == "onnxruntime.InferenceSession", int(m[2]), a)
    m = _EXPORT.fullmatch(fn)
    if m is not None:
        return _export_source(int(m[1]), m[2] == "True", a)
    return None


def _model_source(ort: bool, opset: int, a: dict) -> str | None:
    attrs = {k: a[k] for k in _ATTRS if k in a}
    if "kernel_shape" not in attrs or a.get("dtype") not in _ELEM:
        return None
    ir = a.get("ir_version")
    runner = ("y = ort_run(model, feeds)" if ort else
              "from onnx.reference import ReferenceEvaluator\n"
              "print(f'onnx.reference (onnx {onnx.__version__})')\n"
              "y = ReferenceEvaluator(model).run(None, dict(zip(names, feeds)))[0]")
    what = "onnxruntime" if ort else "onnx.reference.ReferenceEvaluator"
    return "\n".join(([] if not ort else _SESSION) + [
        "import onnx",
        "from onnx import TensorProto, helper",
        "",
        f"ATTRS = {attrs!r}  # as recorded",
        f"et = TensorProto.{_ELEM[a['dtype']]}",
        "names = ['X', 'W'] + (['B'] if b is not None else [])",
        "inputs = [helper.make_tensor_value_info('X', et, list(x.shape)),",
        "          helper.make_tensor_value_info('W', et, list(w.shape))]",
        "if b is not None:",
        "    inputs.append(helper.make_tensor_value_info('B', et, [int(w.shape[1]) * int(ATTRS.get('group', 1))]))",
        "node = helper.make_node('ConvTranspose', names, ['Y'], **ATTRS)",
        "yinfo = helper.make_tensor_value_info('Y', et, [f'y{i}' for i in range(x.ndim)])",
        f"opsets = [helper.make_opsetid('', {opset})]",
        "model = helper.make_model(helper.make_graph([node], 'conv_transpose', inputs, [yinfo]), opset_imports=opsets,",
        f"                          ir_version={ir if isinstance(ir, int) else 'helper.find_min_ir_version_for(opsets)'})",
        "try:",
        "    onnx.checker.check_model(model, full_check=True)",
        "    checker = None",
        "except Exception as exc:  # noqa: BLE001",
        "    checker = f'{type(exc).__name__}: {str(exc).strip()[:400]}'",
        "print(f'onnx.checker: {checker or \"ok\"}')",
        "feeds = [t.astype(NP_DTYPE) for t in (x, w, b) if t is not None]",
        runner,
        "if checker and not EXPECT_ERROR:  # the adapter's rule: a refused valid model is an error",
        f"    raise RuntimeError(f'onnx.checker refused a valid configuration ({what} ran it): {{checker}}')",
        "native_dtype, out = str(np.asarray(y).dtype), np.asarray(y).astype(np.float64)",
    ])


def _export_source(rank: int, dynamo: bool, a: dict) -> str | None:
    mod = a.get("module") or {}
    if not all(k in mod for k in ("stride", "padding", "output_padding", "groups", "dilation")):
        return None
    kw = {k: mod[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}
    export = ("prog = torch.onnx.export(mod, (tx,), dynamo=True, input_names=['X'], output_names=['Y'],"
              " verbose=False)\n    model = prog.model_proto" if dynamo else
              "buf = io.BytesIO()\n    torch.onnx.export(mod, (tx,), buf, dynamo=False, input_names=['X'],"
              " output_names=['Y'])\n    model = onnx.load_from_string(buf.getvalue())")
    return "\n".join(_SESSION + [
        "import io",
        "import warnings",
        "",
        "import onnx",
        "import torch",
        "",
        f"mod = torch.nn.ConvTranspose{rank}d(x.shape[1], w.shape[1] * {kw['groups']!r}, "
        "kernel_size=list(w.shape[2:]),",
        f"    bias=b is not None, dtype=torch.float32, **{kw!r})",
        "with torch.no_grad():",
        "    mod.weight.copy_(torch.from_numpy(w.astype(np.float32)))",
        "    if b is not None:",
        "        mod.bias.copy_(torch.from_numpy(b.astype(np.float32)))",
        "mod.eval()",
        "tx = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))",
        "with warnings.catch_warnings():",
        "    warnings.simplefilter('ignore')",
        f"    {export}",
        "conv = [n for n in model.graph.node if n.op_type == 'ConvTranspose']",
        "if conv:",
        "    print('exported ConvTranspose attributes:',",
        "          {at.name: onnx.helper.get_attribute_value(at) for at in conv[0].attribute})",
        "out = np.asarray(ort_run(model, [x.astype(np.float32)])).astype(np.float64)",
    ])
