"""Results-file fuzz: random and mutated results files never make a command trace back, and never
put code into a reproducer. Each example starts from one of the committed results files
(``tests/data/results_sample.json``, schema 1; ``results_repro.json``, schema 3 with its
tables), or from nothing; changes values, keys and types at random places, drops and duplicates
records, puts control characters, quotes and code into strings; and runs it through every command
that reads results (``report``, ``compare`` both ways, ``merge``, ``repro``) in-process through the
command line's ``main``. Each command either succeeds or refuses with non-zero exit; a refused
file is one line naming it; nothing it prints holds a control character; a reproducer it writes
holds only the suite's own code (imports from an allow-list, no call of os / subprocess / eval /
exec, every function one of the suite's). The reader's compiled schema checks answer as jsonschema
does on every document and record. A few hostile files also go through subprocesses.

Under the ``ci`` profile half its examples (~30 s on 2 cores); ``HYPOTHESIS_PROFILE=thorough`` for
1,000."""

from __future__ import annotations

import ast
import contextlib
import copy
import inspect
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import convt_conformance
from convt_conformance.cli.main import main
from convt_conformance.repro.common import COMMON_TAIL
from convt_conformance.results import schema
from convt_conformance.results.store import ResultsFileError, read_results
from tests.conftest import DATA, ROOT, document_slots, mutate_slot

PACKAGE = Path(convt_conformance.__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), str(ROOT)])}


def _subset(doc: dict, keep: int) -> dict:
    """The document with its failing and known records and the first others, ``keep`` in all (a
    compact document keeps its tables whole: records refer to them by index)."""
    records = doc["results"]
    notable = [r for r in records if r["status"] not in ("pass", "unsupported")]
    return {**doc, "results": (notable + [r for r in records if r not in notable])[:keep]}


SOURCES = {
    "sample": _subset(json.loads((DATA / "results_sample.json").read_text()), 10),
    "compact": _subset(json.loads((DATA / "results_repro.json").read_text()), 10),
}
SCHEMAS = ["conformance-results/1", "conformance-results/2", "conformance-results/3"]

#: text an attacker puts into a string field: code after a line break, quotes that close a
#: literal or a docstring, terminal escapes, separators Python or a terminal treats as line ends
HOSTILE_TEXT = st.sampled_from([
    '\nimport os; os.system("touch PWNED")\n', '"""\nimport os\n"""', "'''", "')\nimport os\n('", "\\",
    "\x1b[2J\x1b]0;t\x07", "\r", "\x00", "\x0c", "\u2028", "\u202e", "\x85", "{x}", "%s", "\n#", "\t",
    "__import__('os').system('id')", "../../etc/passwd", "a" * 300,
])
TRICKY = st.one_of(
    st.sampled_from([2.0, 1.0, 0.5, -1, 0, 1, 3, 10**400, -(10**400), 2**63, 2**64, 10**20, math.nan, math.inf,
                     -math.inf, 1e308, True, False, None, "", "abc", "inf", "nan", "pass", "fail", "xfail", "crash",
                     "value", "timeout", "cpu", "gpu", "float32", "bfloat16", "numpy", "torch", "scatter",
                     "conv_transpose_scatter", "conv_transpose_grad", "lax_conv", [], {}, [1.5], [[1, 2], [3]],
                     [0], [-2, 3], {"a": 1}, [10**400], ["abc"], [1, 2, 3, 4, 5, 6, 7, 8, 9], {"max": "x"},
                     {"call": "os.system", "call_kwargs": {}}, {"index": 2, "count": 1}, -5, 10**6]),
    st.integers(-3, 60), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), HOSTILE_TEXT,
    st.lists(st.integers(-3, 9), max_size=4),
)
KEYS = st.sampled_from([
    "case", "adapter", "api", "device", "dtype", "status", "failure_kind", "underlying_status", "message",
    "native_call", "tolerance", "tolerance_max", "known", "cotangent", "shape", "expected_shape", "params",
    "max_abs_err", "arrays", "function", "arguments", "call", "call_kwargs", "max", "model", "coefficient_of_R",
    "schema", "results", "environment", "selection", "shard", "in_progress", "stream", "cases", "native_calls",
    "tolerances", "knowns", "messages", "versions", "problems", "convention_probes", "bogus",
])


@st.composite
def results_documents(draw) -> tuple[str, object]:
    """(what it started from, a document): a mutated committed file, or a random one."""
    start = draw(st.sampled_from(["sample", "compact", "sample", "compact", "random"]))
    if start == "random":
        leaf = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**64), st.floats(), st.text(max_size=8),
                         HOSTILE_TEXT)
        value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                             max_leaves=12)
        return start, draw(st.one_of(
            value, st.fixed_dictionaries({"schema": st.sampled_from(SCHEMAS), "results": st.lists(value, max_size=3)})))
    doc = copy.deepcopy(SOURCES[start])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "replace", "inject", "inject", "delete", "rename", "wrap", "nest",
                                   "duplicate", "drop", "schema"]))
        records = doc.get("results") if isinstance(doc.get("results"), list) else []
        if op == "duplicate" and records:
            records.append(copy.deepcopy(records[draw(st.integers(0, len(records) - 1))]))
            continue
        if op == "drop" and records:
            del records[draw(st.integers(0, len(records) - 1))]
            continue
        if op == "schema":
            doc["schema"] = draw(st.sampled_from([*SCHEMAS, "conformance-results/9", None, 3]))
            continue
        places = document_slots(doc)
        parent, key = places[draw(st.integers(0, len(places) - 1))]
        if op == "inject":
            strings = [(p, k) for p, k in places if isinstance(p[k], str)]
            if strings:
                parent, key = strings[draw(st.integers(0, len(strings) - 1))]
                at = draw(st.integers(0, len(parent[key])))
                parent[key] = parent[key][:at] + draw(HOSTILE_TEXT) + parent[key][at:]
        else:
            mutate_slot(draw, parent, key, op, TRICKY, KEYS)
    return start, doc


# -- what "only the suite's own code" means for a script -------------------------------------------

def _function_dump(node: ast.FunctionDef) -> str:
    """``ast.dump`` of a function with its docstrings' indentation cleaned (a script indents the
    functions it embeds in ``native``; that changes nothing else)."""
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.body and isinstance(n.body[0], ast.Expr) \
                and isinstance(n.body[0].value, ast.Constant) and isinstance(n.body[0].value.value, str):
            n.body[0].value.value = inspect.cleandoc(n.body[0].value.value)
    return ast.dump(node)


def _suite_functions() -> set[str]:
    """:func:`_function_dump` of every function the suite's sources define, and of the shared
    script tail's: a reproducer embeds such functions as they are."""
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")] + [ast.parse(COMMON_TAIL)]
    return {_function_dump(n) for t in trees for n in ast.walk(t) if isinstance(n, ast.FunctionDef)}


SUITE_FUNCTIONS = _suite_functions()
#: the script's own two functions, written by convt_conformance/repro/scripts.py
SCRIPT_FUNCTIONS = ("to_dtype", "native")
ALLOWED_IMPORTS = ("numpy", "ml_dtypes", "importlib", "sys", "os", "math", "functools", "io", "logging", "warnings",
                   "collections", "types", "typing", "jax", "torch", "tensorflow", "keras", "onnx", "onnxruntime",
                   "openvino", "convt_conformance.oracle")
FORBIDDEN_CALLS = ("eval", "exec", "compile", "__import__", "open", "globals", "locals", "vars", "breakpoint",
                   "input", "setattr", "delattr")


def _allowed_module(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in ALLOWED_IMPORTS)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def script_problems(script: str) -> list[str]:
    """Why ``script`` is not made of the suite's own code only (empty: it is)."""
    tree = ast.parse(script)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"import {a.name}" for a in node.names if not _allowed_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level or not _allowed_module(node.module or ""):
                out.append(f"from {node.module} import")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            root = name.split(".")[0]
            if name in FORBIDDEN_CALLS or root in ("subprocess", "shutil", "socket", "pty", "builtins") or (
                    root == "os" and not name.startswith("os.environ.")):
                out.append(f"call of {name}")
        elif isinstance(node, ast.FunctionDef) and node.name not in SCRIPT_FUNCTIONS \
                and _function_dump(node) not in SUITE_FUNCTIONS:
            out.append(f"function {node.name} is not the suite's")
    tops = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    if any(tops.count(n) > 1 for n in SCRIPT_FUNCTIONS):
        out.append("a script function defined twice")
    return out


def test_script_check_can_fail():
    """The check above finds code that is not the suite's."""
    assert script_problems("import os\nos.system('x')\n") == ["call of os.system"]
    assert script_problems("def conv_transpose_grad(x):\n    return x\n") == \
        ["function conv_transpose_grad is not the suite's"]
    assert script_problems("import subprocess\n") == ["import subprocess"]
    assert script_problems("exec('1')\n") == ["call of exec"]
    assert script_problems("import numpy as np\nos_environ = 1\n") == []


def assert_fast_check_agrees_with_jsonschema(doc: object) -> None:
    """The reader's compiled checks (results/schema.py) answer as jsonschema does on the schemas."""
    records = doc.get("results") if isinstance(doc, dict) else None
    pairs = [(schema._DOCUMENT, doc), (schema._COMPACT_DOC, doc)]
    pairs += [(s, r) for r in (records if isinstance(records, list) else []) for s in (schema._RECORD,
                                                                                      schema._COMPACT_RECORD)]
    for check, value in pairs:
        assert check.is_valid(value) == check.validator.is_valid(value), (check.schema.get("required"), value)


# -- running the commands ------------------------------------------------------------------------

def _run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, standard output, standard error). An exception out
    of ``main`` fails the test (it would be a traceback)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def _check_id(doc: object) -> str:
    """A check id of the document's first record that has one, else any id."""
    for r in (doc.get("results") if isinstance(doc, dict) and isinstance(doc.get("results"), list) else []):
        if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("case", "adapter", "api", "dtype")):
            return f"{r['case']}[{r['adapter']}.{r['api']}-{r.get('device', 'cpu')}-{r['dtype']}]"
    return "x[numpy.scatter-cpu-float32]"


GOOD = {name: json.dumps(doc) for name, doc in SOURCES.items()}


@settings(max_examples=max(1, settings.default.max_examples // 2))
@given(results_documents(), st.booleans())
def test_results_files_never_trace_back_or_inject(tmp_path_factory, example, truncate):
    start, doc = example
    where = tmp_path_factory.mktemp("fuzz")
    text = json.dumps(doc, allow_nan=True)
    if truncate and start != "random":
        text = text[: len(text) // 2]
    path = where / "results.json"
    path.write_text(text, encoding="utf-8")
    good = where / "good.json"
    good.write_text(GOOD["compact" if start == "random" else start], encoding="utf-8")
    try:
        read_results(path)
        refused = False
    except ResultsFileError:
        refused = True
    assert_fast_check_agrees_with_jsonschema(json.loads(text) if not truncate or start == "random" else doc)
    f = str(path)
    runs = {
        "report": ["report", f, "-o", str(where / "r.html")],
        "compare": ["compare", str(good), f],
        "compare-exact": ["compare", f, f"{good}", "--exact"],
        "merge": ["merge", str(where / "m.json"), f],
        "repro": ["repro", _check_id(doc), "--results", f, "-o", str(where / "s.py")],
    }
    for what, argv in runs.items():
        code, out, err = _run(argv)
        shown = out + err
        assert "Traceback" not in shown, (what, shown)
        assert all(ch.isprintable() or ch == "\n" for ch in shown), (what, shown)
        command = argv[0]
        if refused:
            lines = err.strip().split("\n")
            assert code == 1 and len(lines) == 1, (what, code, err)
            assert lines[0].startswith(f"conformance {command}: {f}: "), (what, err)
        else:
            assert code in (0, 1), (what, code, err)
            assert code == 0 or err.strip(), (what, out)
            assert all(line.startswith(f"conformance {command}") for line in err.strip().split("\n") if line
                       and not line.startswith(("report:", "reproducer:"))), (what, err)
    script = where / "s.py"
    if script.exists():
        source = script.read_text(encoding="utf-8")
        assert all(ch.isprintable() or ch == "\n" for ch in source)
        assert script_problems(source) == [], source


# -- a few hostile files through subprocesses ----------------------------------------------------

def _hostile_files(where: Path) -> dict[str, Path]:
    compact = copy.deepcopy(SOURCES["compact"])
    compact["results"] = [1, *compact["results"]]  # a record that is not an object
    escapes = copy.deepcopy(SOURCES["compact"])
    escapes["results"][0]["message"] = "\x1b[2J\x1b]0;t\x07" + '\nimport os; os.system("touch PWNED")\n'
    dup = copy.deepcopy(SOURCES["compact"])
    dup["results"].append(dict(dup["results"][0]))
    files = {"not-an-object": compact, "escapes": escapes, "duplicate": dup}
    out = {}
    for name, doc in files.items():
        out[name] = where / f"{name}.json"
        out[name].write_text(json.dumps(doc), encoding="utf-8")
    return out


#: (command, hostile file): each command meets a refused file and the valid one with escapes
SUBPROCESS_RUNS = (("report", "not-an-object"), ("compare", "escapes"), ("merge", "duplicate"),
                   ("repro", "escapes"), ("repro", "duplicate"))


def test_hostile_files_through_subprocesses(tmp_path):
    files = _hostile_files(tmp_path)
    good = tmp_path / "good.json"
    good.write_text(GOOD["sample"], encoding="utf-8")
    for command, name in SUBPROCESS_RUNS:
        f = files[name]
        argv = {"report": ["report", str(f), "-o", str(tmp_path / f"{name}.html")],
                "compare": ["compare", str(good), str(f)],
                "merge": ["merge", str(tmp_path / f"{name}-m.json"), str(f)],
                "repro": ["repro", _check_id(json.loads(f.read_text())), "--results", str(f),
                          "-o", str(tmp_path / f"{name}.py")]}[command]
        done = subprocess.run([sys.executable, "-m", "convt_conformance", *argv], cwd=tmp_path, env=ENV,
                              capture_output=True, text=True, timeout=300)
        shown = done.stdout + done.stderr
        assert "Traceback" not in shown and all(ch.isprintable() or ch == "\n" for ch in shown), shown
        if name == "escapes":  # valid: the message is shown escaped where it is shown at all
            assert done.returncode in (0, 1) and "\x1b" not in shown, shown
            if command == "repro":
                script = (tmp_path / f"{name}.py").read_text()
                assert done.returncode == 0 and script_problems(script) == [] and "\\x1b[2J" in script
        else:
            assert done.returncode == 1 and done.stderr.count("\n") == 1, shown
            assert done.stderr.startswith(f"conformance {command}: {f}: not a valid results file: "), shown
    assert not (tmp_path / "PWNED").exists()
