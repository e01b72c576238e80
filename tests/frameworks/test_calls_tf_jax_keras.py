"""The native calls of the tensorflow, jax and keras adapters are written once, in each folder's
calls.py. A check's recorded call (``arguments["call"]`` and ``["call_kwargs"]``) made again
through its reproducer's text (the ``conformance repro`` script, run in a fresh interpreter that
imports only NumPy and the framework) gives exactly the adapter's array on the same inputs, so the
adapter and its reproducer cannot drift apart silently; and a record naming anything but a
function of calls.py's ``CALLS``, or carrying hostile text, gets no script, or that text only as a
literal."""

from __future__ import annotations

import ast
import copy
import importlib
import os
import pickle
import subprocess
import sys
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from convt_conformance.adapters import get_adapter
from convt_conformance.adapters.base import Adapter, failed_call
from convt_conformance.adapters.keras.adapter import installed_backends
from convt_conformance.checking.check import base_record, memo_gradient, memo_inputs, run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import Case, load_cases
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.repro.scripts import repro_script
from tests.conftest import DATA, framework_available

FRAMEWORKS = ("tensorflow", "jax", "keras")
CASES = {c.id: c for c in load_cases([DATA / "probes", CASES_DIR / "paths", CASES_DIR / "documents",
                                      CASES_DIR / "sweeps" / "string_padding.yaml"]).cases}
GROUPED = "paths-2d-groups-bias"  # groups 2, bias, stride (1, 2)
DILATED = "paths-2d-axis-pads-dilation"  # unequal pads per axis, dilation (2, 1), stride (2, 1)
SAME = "strpad2d-k4x1-s3x2-psame"  # the case's `same`, bias, output_padding, non-square kernel
VALID_1D = "strpad1d-k2-s2-pvalid-op1"  # rank 1, `valid` with output_padding
# (case, api, dtype) per framework: every function of its calls.py with each of its options
# (forward, execution paths, gradients, string and explicit padding, groups, dtypes)
CHECKS: dict[str, list[tuple[str, str, str]]] = {
    "tensorflow": [(SAME, "conv_transpose", "float32"), ("probe-2d", "conv_transpose", "bfloat16"),
                   (VALID_1D, "conv_transpose", "float64"), (DILATED, "conv_transpose@xla", "float32"),
                   (DILATED, "conv_transpose@nchw", "float32"),  # the CPU kernels may refuse it: both must
                   *((SAME, f"conv_transpose:{q}", "float32") for q in ("grad_input", "grad_weight", "grad_bias"))],
    "jax": [(GROUPED, "conv_general_dilated", "float32"), (GROUPED, "conv_general_dilated:grad_weight", "float32"),
            (GROUPED, "conv_general_dilated:grad_bias", "float32"), (GROUPED, "conv_general_dilated@vmap", "float32"),
            (DILATED, "conv_general_dilated@eager", "float16"), (DILATED, "conv_transpose", "float32"),
            (DILATED, "conv_transpose:grad_weight", "float32"), (SAME, "conv_transpose", "float64"),
            (SAME, "conv_transpose:grad_input", "float32"), (DILATED, "conv_transpose@eager", "float32")],
    "keras": [check for backend in installed_backends() for check in (
        (SAME, f"{backend}:ops", "float32"), (SAME, f"{backend}:layer", "float64"), (SAME, f"{backend}:layer_cf", "float32"),
        (VALID_1D, f"{backend}:layer", "float32"),
        *(() if backend == "numpy" else ((SAME, f"{backend}:ops:grad_weight", "float32"),
                                         (SAME, f"{backend}:layer:grad_bias", "float32"),
                                         (SAME, f"{backend}:layer_cf:grad_input", "float64"))))],
}

# Runs each script as a module not named __main__ (its check is not run), then its native call on
# the script's own tensors; pickles (tensors, output or error) per script and the convt_conformance
# modules the process imported.
_DRIVER = """
import pickle, runpy, sys
out = {}
for path in sys.argv[2:]:
    ns = runpy.run_path(path, run_name="repro")
    got = {k: ns[k] for k in ("x", "w", "b", "G")}
    try:
        got["out"], got["dtype"] = ns["native"](ns["x"], ns["w"], ns["b"])
    except Exception as exc:
        got["error"] = f"{type(exc).__name__}: {exc}"
    out[path] = got
out["imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "convt_conformance")
with open(sys.argv[1], "wb") as f:
    pickle.dump(out, f)
"""


def _group(name: str, api: str) -> str:
    """One interpreter per framework, per Keras backend (Keras fixes its backend at import)."""
    return f"keras[{api.split(':')[0]}]" if name == "keras" else name


@pytest.fixture(scope="module")
def adapters(keras_adapter) -> dict[str, Adapter]:
    out: dict[str, Adapter] = {}
    for name in FRAMEWORKS:
        if not framework_available(name):
            continue
        adapter = keras_adapter if name == "keras" else get_adapter(name)
        if name != "keras":
            adapter.configure("strict")
        out[name] = adapter
    return out


def _failed_call(case: Case, adapter: Adapter, api: str, dtype: str) -> dict[str, Any] | None:
    x, w, b = memo_inputs(case, dtype)
    g = memo_gradient(case, api, dtype, x, w, b).g if gradient_quantity(api) else None
    try:
        adapter.run(case, api, "cpu", dtype, x, w, b, g)
    except Exception as exc:
        call = failed_call(exc)
        return call.as_dict() if call is not None else None
    return None


@pytest.fixture(scope="module")
def replayed(adapters, tmp_path_factory) -> dict[str, Any]:
    """{"items": [(framework, case, api, dtype, record, script results)], "imported": {group: modules}}:
    each check of CHECKS run by the suite, its script written from the record and run in a fresh
    interpreter per group."""
    tmp = tmp_path_factory.mktemp("calls")
    items, groups = [], defaultdict(list)
    for name, adapter in adapters.items():
        for cid, api, dtype in CHECKS[name]:
            case = CASES[cid]
            rec = run_check(case, adapter, api, "cpu", dtype, "strict", []).as_dict()
            if not rec["native_call"]:  # refused by the framework: the call that failed, as its error carries it
                rec["native_call"] = _failed_call(case, adapter, api, dtype)
            assert rec["native_call"], (name, api, cid, dtype, rec["status"], rec["message"])
            path = tmp / f"s{len(items)}.py"
            script = repro_script(rec, case)
            assert "NOT AVAILABLE" not in script.split("\n", 2)[1], script[:400]
            path.write_text(script)
            items.append((name, case, api, dtype, rec, str(path)))
            groups[_group(name, api)].append(str(path))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    results: dict[str, Any] = {}
    imported: dict[str, list[str]] = {}
    for group, paths in groups.items():
        out = tmp / f"{group}.pkl"
        res = subprocess.run([sys.executable, "-c", _DRIVER, str(out), *paths], cwd=tmp, env=env, text=True,
                             capture_output=True, timeout=600)
        assert res.returncode == 0, (group, res.stderr[-3000:])
        got = pickle.loads(out.read_bytes())
        imported[group] = got.pop("imported")
        results.update(got)
    return {"items": [(*item[:5], results[item[5]]) for item in items], "imported": imported}


def test_every_calls_function_is_recorded(adapters, replayed):
    """Each framework's checks name every function of its calls.py, and only those."""
    for name in adapters:
        calls = importlib.import_module(f"convt_conformance.adapters.{name}.calls")
        named = {rec["native_call"]["arguments"]["call"] for fw, _, _, _, rec, _ in replayed["items"] if fw == name}
        assert named == set(calls.CALLS), name


def test_scripts_import_only_the_framework(replayed):
    assert replayed["imported"] and not any(replayed["imported"].values()), replayed["imported"]


def test_reproducer_call_gives_the_adapters_array(adapters, replayed):
    """The recorded call made through the script's text, and the adapter's own call, on the
    script's tensors: the same array (or the same refusal), in the same dtype."""
    compared = 0
    for name, case, api, dtype, rec, got in replayed["items"]:
        adapter = adapters[name]
        label = f"{name} {api} {case.id} {dtype}"
        try:
            run = adapter.run(case, api, "cpu", dtype, got["x"], got["w"], got["b"],
                              got["G"] if gradient_quantity(api) else None)
        except Exception as exc:  # the framework refused (e.g. channels-first on CPU): the script's call alike
            assert "error" in got, (label, exc)
            assert got["error"].split(":")[0] in (type(exc).__name__, str(exc).split(":")[0]), (label, got["error"], exc)
            continue
        assert "error" not in got, (label, got.get("error"))
        recorded = rec["native_call"]["arguments"]
        assert run.native_call.arguments["call"] == recorded["call"], label
        assert run.native_call.arguments["call_kwargs"] == recorded["call_kwargs"], label
        assert got["dtype"] == run.native_dtype, label
        np.testing.assert_array_equal(got["out"], run.array, err_msg=label)
        compared += 1
    assert compared > len(replayed["items"]) // 2


# --- hostile records: what a results file says never becomes code ---
HOSTILE = '"""\nimport os\nos.system("echo hostile")\n"""'

# A record of each framework as its adapter writes it (the real ones are checked above): made
# without running a framework, so the hostile variants below need none.
_VALID: dict[str, tuple[str, dict[str, Any]]] = {
    "tensorflow": ("conv_transpose", {
        "function": "tf.nn.conv2d_transpose", "weight_permutation": [2, 3, 1, 0],
        "precision": {"tensor_float_32_execution": False},
        "arguments": {"call": "conv_transpose", "call_kwargs": {
            "dtype": "float32", "device": "/CPU:0", "output_shape": [1, 2, 3, 1], "strides": [1, 1],
            "padding": "VALID", "dilations": [1, 1]}}}),
    "jax": ("conv_transpose", {
        "function": "jax.lax.conv_transpose", "weight_permutation": None,
        "precision": {"precision": "HIGHEST"},
        "arguments": {"call": "lax_conv", "call_kwargs": {
            "api": "conv_transpose", "strides": [1, 1], "padding": [[0, 0], [0, 0]], "rhs_dilation": [1, 1],
            "dimension_numbers": ["NCHW", "OIHW", "NCHW"], "precision": "highest", "transpose_kernel": True,
            "use_consistent_padding": True, "dtype": "float32", "device": "cpu"}}}),
    "keras": ("jax:ops", {
        "function": "keras.ops.conv_transpose (KERAS_BACKEND=jax)", "weight_permutation": [2, 3, 1, 0],
        "precision": {}, "arguments": {"keras": "3", "call": "conv_transpose", "call_kwargs": {
            "backend": "jax", "layer": False, "dtype": "float32", "data_format": "channels_last",
            "strides": [1, 1], "padding": "valid", "output_padding": None, "dilation_rate": [1, 1]}}}),
}
# a string argument of each, replaced by hostile text
_STRING_KWARG = {"tensorflow": "padding", "jax": "api", "keras": "data_format"}


def _script(name: str, native_call: dict[str, Any]) -> str:
    api = _VALID[name][0]
    adapter = get_adapter(name)
    case = CASES["doc-basic-2x2"]
    rec = base_record(case, adapter, api, "cpu", "float32", "strict").as_dict()
    rec.update(status="fail", native_call=native_call)
    return repro_script(rec, case)


def _variant(name: str, **changes: Any) -> dict[str, Any]:
    call = copy.deepcopy(_VALID[name][1])
    for key, value in changes.items():
        if key in ("function", "weight_permutation"):
            call[key] = value
        elif key == "call":
            call["arguments"]["call"] = value
        else:
            call["arguments"]["call_kwargs"][key] = value
    return call


def _code(text: str) -> tuple[int, int]:
    """(import statements, calls of a ``system`` attribute) in the source ``text``, which must parse."""
    nodes = list(ast.walk(ast.parse(text)))
    return (sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes),
            sum(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "system"
                for n in nodes))


def _literals(text: str) -> set[object]:
    return {n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)}


def _not_available(script: str) -> bool:
    return script.split("\n", 2)[1].endswith("NOT AVAILABLE.")


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_valid_record_gets_its_calls_function(name):
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    call = _VALID[name][1]
    script = _script(name, call)
    assert not _not_available(script), script[:600]
    fn = call["arguments"]["call"]
    assert f"def {fn}(" in script and f" = {fn}(" in script
    ast.parse(script)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_unknown_call_gets_no_script(name):
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    adapter = get_adapter(name)
    for bad in ("system", "__import__", "CALLS", "np", "conv_transpose; import os", None, ["conv_transpose"]):
        call = _variant(name, call=bad)
        assert adapter.repro_call(call) is None, bad
        assert _not_available(_script(name, call)), bad


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_hostile_strings_stay_literals(name):
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    adapter = get_adapter(name)
    valid = _code(_script(name, _VALID[name][1]))
    for hostile in (HOSTILE, "x\n import os", "'''\nimport os\n'''", "\\\nimport os"):
        call = _variant(name, **{_STRING_KWARG[name]: hostile})
        source = adapter.repro_call(call)
        if source is not None:
            assert repr(hostile) in source and hostile in _literals(source)
        script = _script(name, call)
        assert _code(script) == valid or (_not_available(script) and _code(script)[1] == 0), hostile


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_other_hostile_fields_give_no_script(name):
    """Keyword names that are not identifiers, values that are not plain literals, or a permutation
    that is not one: no script."""
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    adapter = get_adapter(name)
    variants = [_variant(name, **{"x=1), __import__('os').system('echo hostile'), f(y": 1}),
                _variant(name, strides=[1, float("inf")]), _variant(name, output_shape=object())]
    if name != "jax":  # JAX's weight goes in as is (no permutation recorded)
        variants += [_variant(name, weight_permutation=["__import__('os')", 0]),
                     _variant(name, weight_permutation=[0, 0, 1, 2])]
    for call in variants:
        assert adapter.repro_call(call) is None, call
        script = _script(name, call)
        assert _not_available(script), script[:600]
        assert _code(script)[1] == 0


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_function_text_is_never_code(name):
    """The human-readable ``function`` decides nothing: the same source whatever it says, and the
    script holds it in comments only."""
    if not framework_available(name):
        pytest.skip(f"{name} is not installed")
    adapter = get_adapter(name)
    valid = _VALID[name][1]
    for text in (HOSTILE, "conv_transpose\\", None, "tf.nn.conv2d_transpose; import os"):
        call = _variant(name, function=text)
        assert adapter.repro_call(call) == adapter.repro_call(valid), text
        assert _code(_script(name, call)) == _code(_script(name, valid)), text


def test_keras_backend_is_one_of_keras_own():
    if not framework_available("keras"):
        pytest.skip("keras is not installed")
    adapter = get_adapter("keras")
    for bad in ("jax'\nimport os\n'", "os", None):
        call = _variant("keras", backend=bad)
        assert adapter.repro_prelude(call) == "" and adapter.repro_call(call) is None, bad
    assert "os.environ['KERAS_BACKEND'] = 'jax'" in adapter.repro_prelude(_VALID["keras"][1])


def test_gradient_record_needs_its_quantity(adapters):
    """A gradient reproducer is written only for the quantity the recorded ``wrt`` names."""
    for name, wrt, other in (("tensorflow", "weight", "grad_input"), ("jax", "weight", "grad_bias"),
                             ("keras", ["input"], "grad_weight")):
        if name not in adapters:
            continue
        call = _variant(name, wrt=wrt)
        assert adapters[name].repro_gradient_call(call, other) is None, name
        assert adapters[name].repro_call(call) is None, name  # a gradient's record is not a forward call
        right = {"tensorflow": "grad_weight", "jax": "grad_weight", "keras": "grad_input"}[name]
        assert adapters[name].repro_gradient_call(call, right) is not None, name


def test_tensorflows_described_call_is_the_call_it_records(adapters, replayed):
    """A known crash no sibling survives gets its reproducer from ``describe_call``: for every
    TensorFlow forward check here (eager, ``@xla``, ``@nchw``) the described call is the recorded
    one, but for what only the call itself learns (where it ran, the XLA compile cache)."""
    if "tensorflow" not in adapters:
        pytest.skip("tensorflow is not installed")
    tf = adapters["tensorflow"]
    after = ("placed_on", "compile_cache_entries")
    compared = 0
    for name, case, api, dtype, rec, _ in replayed["items"]:
        if name != "tensorflow" or gradient_quantity(api) or not rec["native_call"]:
            continue
        described = tf.describe_call(case, rec["api"], "cpu", dtype)
        assert described is not None, (case.id, api)
        got, want = described.as_dict(), copy.deepcopy(rec["native_call"])
        for key in after:
            got["arguments"].pop(key, None)
            want["arguments"].pop(key, None)
        assert got == want, (case.id, api, dtype)
        compared += 1
    assert compared == 5  # the five forward checks of CHECKS: eager (3), @xla, @nchw
    assert tf.describe_call(CASES[GROUPED], "conv2d_transpose:grad_input", "cpu", "float32") is None
