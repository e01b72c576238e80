"""Reproducer call sources for the litert adapter (``conformance repro``; see Adapter.repro_call).

A script makes the recorded call with the very function the adapter ran: the source of
convt_conformance/adapters/litert/calls.py's ``litert_run`` (with the helpers it uses: the
conversion, the interpreter run, the flatbuffer reader), called with the recorded keyword
arguments (``arguments["call_kwargs"]``: output_shape, strides, padding, dilations, the float16
weights option, the threads) written as literals (convt_conformance/adapters/call_source.py).
The model's dtype is the script's ``DTYPE`` (float32 for the fp16_weights column, whose model is a
float32 one): the script of a check that crashed makes a sibling check's call, in its own dtype.
A record naming no such function, or holding an argument that is not a plain literal, gets no
script.

Convention: TensorFlow's channels-last data and ``(*K, C_out, C_in)`` filter: the script moves
``x`` channels-last and permutes ``w`` by the recorded ``weight_permutation`` (no flip), and moves
the output back channels-first.
"""

from __future__ import annotations

from convt_conformance.adapters.call_source import call_source, literal
from convt_conformance.adapters.litert import calls as lr_calls


def forward_source(native_call: dict) -> str | None:
    """The recorded model converted and run by the LiteRT interpreter; None for a record that
    names no call of calls.py."""
    a = native_call.get("arguments")
    perm = native_call.get("weight_permutation")
    if not isinstance(a, dict) or a.get("call") != "litert_run" or not isinstance(a.get("call_kwargs"), dict):
        return None
    if not (isinstance(perm, list) and all(type(p) is int for p in perm) and sorted(perm) == list(range(len(perm)))):
        return None
    kwargs = a["call_kwargs"]
    if "dtype" not in kwargs:
        return None
    own = {k: v for k, v in kwargs.items() if k != "dtype"}
    dtype = "'float32'" if own.get("fp16_weights") else "DTYPE"
    src = call_source(lr_calls, {"call": "litert_run", "call_kwargs": own}, result="y, facts",
                      positional=f"np.moveaxis(x, 1, -1), np.transpose(w, {literal(perm)}), b, dtype={dtype}")
    if src is None:
        return None
    return "\n".join([
        "import os",
        "",
        "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # quiet TF's startup log, as the suite",
        "import ai_edge_litert",
        "import tensorflow as tf",
        "",
        "print(f'tensorflow {tf.__version__} (converter), ai_edge_litert {ai_edge_litert.__version__}')",
        "",
        "",
        src.rstrip(),
        "print('converted ops:', [(o['op'], o['options']) for o in facts['ops']])",
        "print('execution plan:', facts['execution_plan'])",
        "native_dtype, out = facts['dtype'], np.moveaxis(y, -1, 1).astype(np.float64)",
    ])
