"""OpenVINO's native calls, written once: the adapter runs these functions, and a reproducer script
embeds their source and calls them with the recorded keyword arguments.

Each function imports only openvino and NumPy, inside its body (a script gets the function's text).

Convention (OpenVINO's ConvolutionBackpropData-1 and GroupConvolutionBackpropData-1 specifications):
data ``(N, C_IN, *S)``; the filter of ``ConvolutionBackpropData`` is ``(C_IN, C_OUT, *K)``, that of
``GroupConvolutionBackpropData`` ``(GROUPS, C_IN/GROUPS, C_OUT/GROUPS, *K)``, applied without a flip;
``pads_begin`` / ``pads_end`` are cut from the full output, ``output_padding`` added at its far end;
or ``auto_pad``, or an ``output_shape`` input from which the pads are derived. Neither op has a bias
input: a bias is an ``Add`` of a ``(1, C_OUT, 1, ...)`` constant after it, as OpenVINO's own
frontends write it (the CPU plugin fuses the two into one Deconvolution node). ``x, w, b`` are the
canonical float64 NumPy arrays already rounded to ``dtype``; ``w`` is canonical ``(C_in,
C_out/groups, *K)``: for the grouped op it is reshaped (not permuted) to the grouped filter layout.
The data is the model's one parameter; the filter and the bias are constants of ``dtype`` in the
model, as in any converted model. A run returns ``(Y, facts)``: the output as float64 in the
framework's (canonical) ``(N, C_OUT, *S_out)`` layout and what OpenVINO reports (the output's
element type, the compiled model's inference precision, the runtime graph's nodes).
"""

import functools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    import openvino

CALLS = ("backprop_data_run",)
HELPERS = ("opset_module", "cpu_core", "element_type", "to_tensor", "from_tensor", "constant_of",
           "backprop_data_model", "compiled_facts")

#: OpenVINO's element type names of the dtypes (``ov.Type.<name>``)
ELEMENT_TYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}


def opset_module(opset: int) -> "ModuleType":
    """``openvino.opset<opset>`` (``openvino.runtime.opset<opset>`` in releases before 2023.1)."""
    import importlib

    try:
        return importlib.import_module(f"openvino.opset{opset}")
    except ImportError:
        return importlib.import_module(f"openvino.runtime.opset{opset}")


@functools.lru_cache(maxsize=4)
def cpu_core(threads: int) -> "openvino.Core":
    """One ``openvino.Core`` per process whose CPU plugin runs ``threads`` inference threads in one
    stream, threads not pinned to cores (other processes share the machine)."""
    try:
        from openvino import Core
    except ImportError:
        from openvino.runtime import Core

    core = Core()
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False})
    return core


def element_type(dtype: str) -> "openvino.Type":
    """OpenVINO's element type of the dtype name ``dtype``."""
    import openvino as ov

    return getattr(ov.Type, {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}[dtype])


def constant_of(ops: "ModuleType", a: np.ndarray, dtype: str) -> "openvino.Node":
    """A ``Constant`` of element type ``dtype`` holding ``a`` (float64 values already representable
    in ``dtype``; bfloat16 goes through float32, exactly)."""
    source = {"float16": np.float16, "bfloat16": np.float32, "float32": np.float32, "float64": np.float64}[dtype]
    return ops.constant(np.ascontiguousarray(a, dtype=source), dtype=element_type(dtype))


def to_tensor(a: np.ndarray, dtype: str) -> "openvino.Tensor":
    """``a`` (float64 values representable in ``dtype``) as an ``openvino.Tensor`` of ``dtype``; a
    bfloat16 tensor gets the upper 16 bits of each float32 (exact for bfloat16 values)."""
    import openvino as ov

    if dtype == "bfloat16":
        t = ov.Tensor(ov.Type.bf16, ov.Shape(list(a.shape)))
        bits = (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
        t.data.view(np.uint16)[...] = bits
        return t
    return ov.Tensor(np.ascontiguousarray(a, dtype=np.dtype(dtype)))


def from_tensor(t: "openvino.Tensor") -> "tuple[np.ndarray, str]":
    """The tensor's values as float64 and its element type as a dtype name (bfloat16 bits widened
    to float32 exactly; any other type by its OpenVINO name)."""
    name = t.get_element_type().get_type_name()
    if name == "bf16":
        bits = np.array(t.data).view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64), "bfloat16"
    dtypes = {"f16": "float16", "f32": "float32", "f64": "float64"}
    return np.array(t.data).astype(np.float64), dtypes.get(name, name)


def backprop_data_model(x_shape: tuple[int, ...], w: np.ndarray, b: np.ndarray | None, *, op: str,
                        strides: list[int], pads_begin: list[int] | None, pads_end: list[int] | None,
                        dilations: list[int], output_padding: list[int], auto_pad: str | None,
                        output_shape: list[int] | None, groups: int, dtype: str, opset: int) -> "openvino.Model":
    """The one-op model ``Y = op(X, W[, output_shape])`` (``+ B``) at ``opset``: the parameter X of
    ``x_shape`` and ``dtype``, the filter W a constant (the grouped op's reshaped to ``(groups,
    C_in/groups, C_out/groups, *K)``), ``output_shape`` an int64 constant when given, the bias an
    ``Add`` of the constant ``b`` reshaped to ``(1, C_out, 1, ...)``. Attributes given as None are
    left to the Python API's defaults."""
    import openvino as ov

    ops = opset_module(opset)
    data = ops.parameter(list(x_shape), element_type(dtype), name="X")
    if op == "GroupConvolutionBackpropData":
        filters = constant_of(ops, w.reshape(groups, w.shape[0] // groups, *w.shape[1:]), dtype)
        make = ops.group_convolution_backprop_data
    else:
        filters = constant_of(ops, w, dtype)
        make = ops.convolution_backprop_data
    kwargs: dict[str, Any] = {"pads_begin": pads_begin, "pads_end": pads_end, "dilations": dilations,
                              "output_padding": output_padding}
    if auto_pad is not None:
        kwargs["auto_pad"] = auto_pad
    if output_shape is not None:
        kwargs["output_shape"] = ops.constant(np.array(output_shape, dtype=np.int64))
    y = make(data, filters, strides, **kwargs)
    if b is not None:
        y = ops.add(y, constant_of(ops, b.reshape(1, -1, *[1] * (len(x_shape) - 2)), dtype))
    return ov.Model([y], [data], "conv_backprop_data")


def compiled_facts(compiled: "openvino.CompiledModel") -> "dict[str, Any]":
    """What the compiled model says about how it runs: its inference precision, execution mode,
    denormals setting and threads, and the runtime graph's nodes (layer type, runtime precision,
    primitive: the oneDNN implementation the CPU plugin chose)."""
    facts: dict[str, Any] = {}
    for key in ("INFERENCE_PRECISION_HINT", "EXECUTION_MODE_HINT", "INFERENCE_NUM_THREADS"):
        try:
            facts[key] = str(compiled.get_property(key))
        except RuntimeError:
            facts[key] = None
    nodes = []
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        nodes.append({k: info[k].astype(str) for k in ("layerType", "runtimePrecision", "primitiveType")
                      if k in info})
    facts["runtime_nodes"] = nodes
    return facts


def backprop_data_run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, op: str, strides: list[int],
                      pads_begin: list[int] | None, pads_end: list[int] | None, dilations: list[int],
                      output_padding: list[int], auto_pad: str | None, output_shape: list[int] | None,
                      groups: int, dtype: str, opset: int, inference_precision: str,
                      threads: int) -> "tuple[np.ndarray, dict[str, Any]]":
    """``op`` (``ConvolutionBackpropData`` or ``GroupConvolutionBackpropData``) in a one-op model
    (:func:`backprop_data_model`) compiled for the CPU plugin with ``INFERENCE_PRECISION_HINT =
    inference_precision`` and inferred on ``x``.

    Convention (OpenVINO's, the canonical one up to the grouped filter's reshape): ``x`` ``(N, C_in,
    *S)``, ``w`` ``(C_in, C_out/groups, *K)`` applied without a flip, ``b`` ``(C_out,)`` or None, all
    float64 holding ``dtype`` values; ``pads_begin``/``pads_end`` cut from the full output,
    ``output_padding`` added at its far end (or ``auto_pad``, or ``output_shape``). Returns ``Y``
    ``(N, C_out, *S_out)`` as float64 and the facts: ``dtype`` (the output tensor's element type),
    ``device`` (the compiled model's execution devices) and :func:`compiled_facts`."""
    model = backprop_data_model(x.shape, w, b, op=op, strides=strides, pads_begin=pads_begin, pads_end=pads_end,
                                dilations=dilations, output_padding=output_padding, auto_pad=auto_pad,
                                output_shape=output_shape, groups=groups, dtype=dtype, opset=opset)
    compiled = cpu_core(threads).compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": inference_precision})
    request = compiled.create_infer_request()
    request.infer({0: to_tensor(x, dtype)})
    y, out_dtype = from_tensor(request.get_output_tensor(0))
    devices = [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]
    return y, {"dtype": out_dtype, "device": devices, **compiled_facts(compiled)}
