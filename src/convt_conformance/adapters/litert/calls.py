"""LiteRT's native calls, written once: the adapter runs these functions, and a reproducer script
embeds their source and calls them with the recorded keyword arguments.

Each function imports only TensorFlow (its converter), ai_edge_litert (the interpreter) and NumPy,
inside its body (a script gets the function's text).

The native call is a one-op model: a ``tf.function`` of ``tf.nn.conv{n}d_transpose`` (plus
``tf.nn.bias_add`` with a bias), its filter and bias constants, converted by
``tf.lite.TFLiteConverter.from_concrete_functions`` (optionally with the converter's float16
weight option) and run by ``ai_edge_litert.interpreter.Interpreter``. Convention (TensorFlow's,
which the converter keeps): data channels-last ``(N, *S, C_in)``; filter ``(*K, C_out, C_in)``,
not flipped (the converter stores it as TFLite's ``(C_out, *K, C_in)``); ``padding`` ``'SAME'``
or ``'VALID'``; ``output_shape`` the whole output's shape, channels-last (any output_padding
folded in). ``x, w, b`` are float64 NumPy arrays holding the values to pass; the model's data
input and its constants are ``float32`` (or ``dtype``: the converter is the one to refuse others).
A run returns ``(Y, facts)``: the output as float64, channels-last, and what the model and the
interpreter say (the output's dtype, the converted operators with their options and operand
tensors, the interpreter's execution plan with its delegate nodes).
"""

import numpy as np  # no `from __future__ import annotations`: annotations evaluate as in a script

CALLS = ("litert_run",)
HELPERS = ("convert", "model_ops", "interpret")


def convert(x_shape: list[int], w: np.ndarray, b: "np.ndarray | None", *, dtype: str, output_shape: list[int],
            strides: list[int], padding: str, dilations: list[int], fp16_weights: bool) -> bytes:
    """The flatbuffer of ``tf.nn.conv{n}d_transpose(x, W, output_shape, strides=, padding=,
    dilations=)`` (``+ tf.nn.bias_add(., B)``) traced as a ``tf.function`` with one input of
    ``x_shape`` and ``dtype`` (W, B constants of ``dtype``), converted by
    ``tf.lite.TFLiteConverter.from_concrete_functions``; ``fp16_weights``: with the converter's
    float16 weights option (``optimizations=[tf.lite.Optimize.DEFAULT]``,
    ``target_spec.supported_types=[tf.float16]``: constants stored in float16, a DEQUANTIZE to
    float32 before the op). ``n`` is ``len(x_shape) - 2``. Convention: channels-last data, filter
    ``(*K, C_out, C_in)`` not flipped, TF's ``'SAME'``/``'VALID'`` padding."""
    import tensorflow as tf

    conv = getattr(tf.nn, f"conv{len(x_shape) - 2}d_transpose")
    tdt = getattr(tf, dtype)
    tw = tf.constant(w, dtype=tdt)
    tb = None if b is None else tf.constant(b, dtype=tdt)

    @tf.function(input_signature=[tf.TensorSpec(list(x_shape), tdt, name="x")])
    def model(x: tf.Tensor) -> tf.Tensor:
        y = conv(x, tw, list(output_shape), strides=list(strides), padding=padding, dilations=list(dilations))
        return y if tb is None else tf.nn.bias_add(y, tb)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    if fp16_weights:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return bytes(converter.convert())


def model_ops(model: bytes) -> "list[dict]":
    """The converted model's operators as the flatbuffer holds them (read with LiteRT's own
    schema, ``ai_edge_litert.schema_py_generated``): per operator its builtin name, its options
    (e.g. TRANSPOSE_CONV's padding, stride_h, stride_w) and its input tensors (name, shape, type)."""
    from ai_edge_litert import schema_py_generated as schema

    def names(cls: type) -> "dict[int, str]":
        return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}

    ops, tensor_types, paddings = names(schema.BuiltinOperator), names(schema.TensorType), names(schema.Padding)
    parsed = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    out = []
    for sub in parsed.subgraphs:
        for op in sub.operators:
            code = parsed.operatorCodes[op.opcodeIndex]
            options: dict = {}
            if op.builtinOptions is not None:
                for key, value in vars(op.builtinOptions).items():
                    options[key] = paddings.get(value, value) if key == "padding" else \
                        (value.tolist() if hasattr(value, "tolist") else value)
            inputs: list[dict | None] = []
            for t in op.inputs:
                if t < 0:
                    inputs.append(None)
                    continue
                tensor = sub.tensors[t]
                name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
                inputs.append({"name": name, "shape": [int(d) for d in tensor.shape],
                               "type": tensor_types.get(tensor.type, tensor.type)})
            out.append({"op": ops.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"), "options": options,
                        "inputs": inputs})
    return out


def interpret(model: bytes, x: np.ndarray, *, threads: int, op_resolver: str) -> "tuple[np.ndarray, dict]":
    """``ai_edge_litert.interpreter.Interpreter(model_content=model, num_threads=threads,
    experimental_op_resolver_type=OpResolverType[op_resolver])``: ``'AUTO'`` (the default: the
    builtin kernels plus the default delegate, XNNPACK) or ``'BUILTIN_WITHOUT_DEFAULT_DELEGATES'``
    (the builtin kernels alone); ``allocate_tensors``, ``set_tensor`` of the one input with ``x`` in the input's dtype,
    ``invoke``; returns the output tensor and the facts (its dtype, the input's dtype, the
    execution plan's nodes as ``_get_ops_details`` lists them, DELEGATE nodes included)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model, num_threads=threads,
                              experimental_op_resolver_type=OpResolverType[op_resolver])
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (outp,) = interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
    interpreter.invoke()
    y = interpreter.get_tensor(outp["index"])
    plan = [str(d["op_name"]) for d in interpreter._get_ops_details()]
    return y, {"dtype": str(np.dtype(outp["dtype"])), "input_dtype": str(np.dtype(inp["dtype"])),
               "execution_plan": plan}


def litert_run(x: np.ndarray, w: np.ndarray, b: "np.ndarray | None", *, dtype: str, output_shape: list[int],
               strides: list[int], padding: str, dilations: list[int], fp16_weights: bool,
               threads: int, op_resolver: str = "AUTO") -> "tuple[np.ndarray, dict]":
    """The one-op model converted (:func:`convert`) and run by the LiteRT interpreter
    (:func:`interpret`) on ``x``. Convention: ``x`` channels-last ``(N, *S, C_in)``, ``w``
    ``(*K, C_out, C_in)`` not flipped, ``b`` ``(C_out,)`` or None, all float64 holding the values
    to pass; ``padding`` ``'SAME'``/``'VALID'`` with ``output_shape`` the whole output's shape;
    ``op_resolver`` the interpreter's (:func:`interpret`). Returns ``Y`` channels-last as the
    interpreter returns it and the facts: ``dtype``,
    ``input_dtype``, ``execution_plan`` (:func:`interpret`) and ``ops`` (:func:`model_ops`). An
    exception carries a note naming the stage that raised it (``refused by: the converter`` or
    ``refused by: the interpreter``)."""
    stage = "the converter (tf.function trace and tf.lite.TFLiteConverter.convert)"
    try:
        model = convert(list(x.shape), w, b, dtype=dtype, output_shape=output_shape, strides=strides,
                        padding=padding, dilations=dilations, fp16_weights=fp16_weights)
        stage = "the interpreter (ai_edge_litert.interpreter.Interpreter)"
        y, facts = interpret(model, x, threads=threads, op_resolver=op_resolver)
    except Exception as exc:
        exc.add_note(f"refused by: {stage}")
        raise
    return y, {**facts, "ops": model_ops(model)}
