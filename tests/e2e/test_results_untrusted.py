"""Results files are untrusted input: a malformed one gives one clean line naming the file, the
record and the key (exit 1, no traceback) in every command that reads it; a reproducer never runs
text of a results file; control characters of a results file reach the terminal escaped."""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import convt_conformance
from convt_conformance.cli.main import main
from convt_conformance.model.terminal import printable
from convt_conformance.results.store import ResultsFileError, read_results
from tests.conftest import DATA, ROOT, TINY_CASE

PACKAGE_PARENT = str(Path(convt_conformance.__file__).resolve().parent.parent)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([PACKAGE_PARENT, str(ROOT)])}
SAMPLE = json.loads((DATA / "results_sample.json").read_text())  # schema 1
COMPACT = json.loads((DATA / "results_repro.json").read_text())  # schema 3
TINY = TINY_CASE
SCATTER = "tiny-one[numpy.scatter-cpu-float32]"
#: code that must never run: it leaves a file named PWNED in the working directory
PAYLOAD = '\nimport os; os.system("touch PWNED")\n'
ESCAPES = "\x1b]0;owned\x07\x1b[2J\r\x9b31m\u202e"


def conformance(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convt_conformance", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def _write(path: Path, doc: dict) -> str:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory) -> dict:
    """A real results file (schema 3) of the NumPy adapter's three formulations of one tiny case."""
    where = tmp_path_factory.mktemp("numpy_run")
    (where / "tiny.yaml").write_text(TINY)
    done = conformance("run", "--cases", "tiny.yaml", "--frameworks", "numpy", "-n", "0", "--no-probes",
                       "--results", "r.json", cwd=where)
    assert (where / "r.json").exists(), done.stdout + done.stderr
    doc = json.loads((where / "r.json").read_text())
    assert doc["schema"] == "conformance-results/3" and len(doc["results"]) == 3
    return doc


def _scatter_call(doc: dict) -> dict:
    rec = next(r for r in doc["results"] if r["api"] == "scatter")
    return doc["native_calls"][rec["native_call"]]


# -- reproducers never run record text ------------------------------------------------------------

HOSTILE = {
    # the function name went inside a docstring, and only its prefix and suffix were checked
    "native_call.function": lambda d: _scatter_call(d).__setitem__(
        "function", 'conformance.oracle.forward.conv_transpose_"""' + PAYLOAD + 'def _f():\n    """.conv_transpose_scatter'),
    # the tolerance model was written after a `#` on a code line: its line break ended the comment
    "tolerance.model": lambda d: d["tolerances"][0].__setitem__("model", "x" + PAYLOAD + "#"),
    "framework_version": lambda d: d["versions"].__setitem__("numpy", "2'''\"\"\"" + PAYLOAD + "\r#"),
    "message": lambda d: d["results"][2].__setitem__("message", "m\u2028" + PAYLOAD + "\x00\x0c" + ESCAPES),
    "known.reason": lambda d: d["results"][2].__setitem__("known", {"reason": "r'" + PAYLOAD + ESCAPES, "issue": ""}),
    "native_call.call": lambda d: _scatter_call(d)["arguments"].__setitem__("call", "conv_transpose_scatter(x, w, b); import os; os.system('touch PWNED'); (ref.conv_transpose_scatter"),
    "call_kwargs": lambda d: _scatter_call(d)["arguments"]["call_kwargs"].__setitem__(
        "groups", "__import__('os').system('touch PWNED')"),
}


@pytest.mark.parametrize("field", sorted(HOSTILE))
def test_repro_of_hostile_record_runs_only_the_suites_code(tmp_path, numpy_run, field):
    """`conformance repro` of a record whose fields carry code: the script's statements are those
    of the clean record's script (the text sits in comments or literals only, or the call is
    refused), and running it in a fresh interpreter creates no PWNED."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    clean = _write(tmp_path / "clean.json", numpy_run)
    hostile_doc = copy.deepcopy(numpy_run)
    HOSTILE[field](hostile_doc)
    hostile = _write(tmp_path / "hostile.json", hostile_doc)
    assert conformance("repro", SCATTER, "--results", clean, "-o", "clean.py", cwd=tmp_path).returncode == 0
    done = conformance("repro", SCATTER, "--results", hostile, "-o", "s.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    script = (tmp_path / "s.py").read_text()
    assert all(ch.isprintable() or ch == "\n" for ch in script)  # nothing hidden from a reader's terminal
    tree, clean_tree = ast.parse(script), ast.parse((tmp_path / "clean.py").read_text())
    refused = field == "native_call.call"
    if refused:  # a call that is not the suite's: no call at all, the script says so
        assert [type(n).__name__ for n in tree.body] == ["Raise"] and "no reproducer" in script
    else:
        assert ast.dump(_without_literals(tree)) == ast.dump(_without_literals(clean_tree))
    run = subprocess.run([sys.executable, "s.py"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                         timeout=120)
    assert not (tmp_path / "PWNED").exists()
    if not refused:
        assert run.returncode == 0 and run.stdout.rstrip().endswith("NOT REPRODUCED"), run.stdout + run.stderr
        assert all(ch.isprintable() or ch == "\n" for ch in run.stdout)


class _Literals(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant(value="<literal>")


def _without_literals(tree: ast.Module) -> ast.Module:
    """The tree with every literal the same: what is left is the script's statements and calls."""
    return _Literals().visit(tree)


def test_scripts_comment_record_text_on_one_line():
    """The one writer of record text into a script: every line of it a `#` comment, each control
    or line-separating character escaped."""
    from convt_conformance.repro.scripts import _comment

    text = _comment("a\nb\rc\x0bd\x0ce\x1cf\x85g\u2028h\x00i\x1b[2J")
    assert all(line.startswith("#") for line in text.split("\n"))
    assert ast.parse(text).body == []
    assert "\\x00" in text and "\\x1b" in text and "\x1b" not in text


def test_jax_reproducer_takes_only_known_lax_functions():
    """JAX's recorded ``api`` picks the ``jax.lax`` function the script calls: one of LAX_APIS, or no
    script."""
    from convt_conformance.adapters.jax import repro

    def call(api: str) -> dict:
        return {"arguments": {"call": "lax_conv", "call_kwargs": {"api": api, "strides": [1], "padding": [[0, 0]],
                                                                  "rhs_dilation": [1], "precision": None}}}

    assert repro.forward_source(call("conv_general_dilated")) is not None
    for api in ("conv", "os.system", "conv_transpose'); import os; ('", ""):
        assert repro.forward_source(call(api)) is None, api


# -- malformed files: one line, exit 1, every command ---------------------------------------------

def _mutate(doc: dict, change) -> dict:
    out = copy.deepcopy(doc)
    change(out)
    return out


MALFORMED = {
    "record not an object": (COMPACT, lambda d: d.__setitem__("results", [1]), "results[0]: must be an object"),
    "unknown status": (COMPACT, lambda d: d["results"][3].__setitem__("status", "passed"),
                       "results[3].status: unknown status 'passed'"),
    "unknown failure kind": (SAMPLE, lambda d: d["results"][2].__setitem__("failure_kind", "wrong"),
                             "results[2].failure_kind: unknown failure kind 'wrong'"),
    "duplicate record": (COMPACT, lambda d: d["results"].append(dict(d["results"][5])),
                         "results[51]: duplicate record of check"),
    "duplicate record v1": (SAMPLE, lambda d: d["results"].insert(7, dict(d["results"][2])),
                            "results[7]: duplicate record of check"),
    "table index past the end": (COMPACT, lambda d: d["results"][0].__setitem__("native_call", 999),
                                 "results[0].native_call: index 999 is beyond"),
    "negative table index": (COMPACT, lambda d: d["results"][0].__setitem__("tolerance", -1),
                             "results[0].tolerance: must be a table index"),
    "table entry mistyped": (COMPACT, lambda d: d["native_calls"].__setitem__(0, "tf.nn"),
                             "native_calls[0]: must be an object, got str"),
    "case table entry": (COMPACT, lambda d: d["cases"]["doc-basic-2x2"].__setitem__("status", "pass"),
                         "cases.doc-basic-2x2: unknown key(s) 'status'"),
    "integral float": (SAMPLE, lambda d: d["results"][1].__setitem__("shape", [1, 1.0, 3]),
                       "results[1].shape[1]: must be a whole number, got float"),
    "NaN token": (SAMPLE, lambda d: d["results"][1].__setitem__("seconds", float("nan")),
                  "results[1].seconds: must be a finite number or null, got nan"),
    "case id with a line break": (SAMPLE, lambda d: d["results"][0].__setitem__("case", "a\nb"),
                                  "results[0].case: must be a case id"),
    "device": (SAMPLE, lambda d: d["results"][0].__setitem__("device", "cpu-x"),
               "results[0].device: unknown device 'cpu-x'; known: cpu, gpu"),
    "unknown gradient": (COMPACT, lambda d: d["results"][1].__setitem__("api", "conv2d_transpose:grad_x"),
                         "results[1].api: api 'conv2d_transpose:grad_x': unknown gradient"),
    "half a tolerance model": (SAMPLE, lambda d: d["results"][0]["tolerance"].pop("floor"),
                               "results[0].tolerance: coefficient_of_R given without floor"),
    "shard count": (SAMPLE, lambda d: d["selection"].__setitem__("shard", {"index": 1, "count": 10**12}),
                    "selection.shard.count: must be <= 100000, got 1000000000000"),
    "stream outside the folder": (COMPACT, lambda d: d.update(in_progress=True, stream="../../etc/passwd"),
                                  "stream: must be a file name next to the results file"),
    "escape sequence in a status": (SAMPLE, lambda d: d["results"][0].__setitem__("status", ESCAPES),
                                    r"results[0].status: unknown status '\x1b]0;owned\x07"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_results_file_is_one_clean_line_in_every_command(tmp_path, capsys, name):
    base, change, text = MALFORMED[name]
    bad = _write(tmp_path / "bad.json", _mutate(base, change))
    good = _write(tmp_path / "good.json", base)
    with pytest.raises(ResultsFileError, match="not a valid results file"):
        read_results(bad)
    for argv in (["report", bad, "-o", str(tmp_path / "r.html")], ["report", good, "--baseline", bad, "-o",
                                                                      str(tmp_path / "r.html")],
                 ["compare", good, bad], ["compare", bad, good], ["merge", str(tmp_path / "m.json"), bad],
                 ["repro", "x[numpy.scatter-cpu-float32]", "--results", bad]):
        assert main(argv) == 1, argv
        out, err = capsys.readouterr()
        lines = err.strip().split("\n")
        assert len(lines) == 1 and lines[0].startswith(f"conformance {argv[0]}: {bad}: not a valid results file: "), err
        assert text in err, (argv, err)
        assert all(ch.isprintable() for ch in lines[0]), err
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "m.json").exists()


def test_releases_matrix_refuses_a_malformed_release_file(tmp_path, capsys, monkeypatch):
    """`releases --matrix-only` and the matrix after a `releases` run read each release's results
    file: a malformed one is one line, exit 1 (it was a traceback)."""
    from convt_conformance.cli import releases as cli_releases

    monkeypatch.setattr(cli_releases, "_releases_of", lambda args, dist: ["1.0"])
    _write(tmp_path / "results-numpy-1.0.json", _mutate(COMPACT, lambda d: d.__setitem__("results", [1])))
    assert main(["releases", "numpy", "--versions", "1.0", "--matrix-only", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().split("\n")
    assert err[-1] == (f"conformance releases: {tmp_path / 'results-numpy-1.0.json'}: not a valid results file: "
                       "results[0]: must be an object, got int")


def test_a_run_in_progress_validates_its_streamed_records(tmp_path):
    doc = _mutate(COMPACT, lambda d: d.update(in_progress=True, results=[]))
    path = _write(tmp_path / "r.json", doc)
    rec = read_results(DATA / "results_sample.json")["results"][0].as_dict()
    lines = [json.dumps(rec), json.dumps({**rec, "api": "other"}), json.dumps({**rec, "status": "weird"})]
    (tmp_path / "r.json.stream.jsonl").write_text("\n".join(lines[:2]) + "\n")
    assert len(read_results(path)["results"]) == 2
    (tmp_path / "r.json.stream.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsFileError, match=r"r.json.stream.jsonl records\[2\].status: unknown status 'weird'"):
        read_results(path)


# -- what reaches the terminal ---------------------------------------------------------------------

def test_terminal_sees_control_characters_of_results_escaped(tmp_path, capsys, monkeypatch, numpy_run):
    """A message, a framework version and a case id of a results file with escape sequences: compare,
    merge and repro print them escaped, each on its line."""
    base = _write(tmp_path / "base.json", SAMPLE)
    new_doc = copy.deepcopy(SAMPLE)
    rec = new_doc["results"][0]
    rec.update(status="fail", failure_kind="value", message="worse" + ESCAPES + "\nverdict: CLEAN")
    new_doc["environment"]["frameworks"]["numpy"] = "2.0" + ESCAPES
    new = _write(tmp_path / "new.json", new_doc)
    assert main(["compare", base, new]) == 1
    out, err = capsys.readouterr()
    for text in (out, err):
        assert all(ch.isprintable() or ch == "\n" for ch in text), text
    assert printable("worse" + ESCAPES + "\nverdict: CLEAN") in out
    assert not any(line.startswith("verdict: CLEAN") for line in out.splitlines())
    # merge: the same check twice across inputs names it, escaped
    assert main(["merge", str(tmp_path / "m.json"), base, new]) == 1
    assert all(ch.isprintable() or ch == "\n" for ch in capsys.readouterr().err)
    # repro to standard output: the script itself shows no control character
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = _mutate(numpy_run, lambda d: d["results"][2].__setitem__("message", "worse" + ESCAPES))
    monkeypatch.chdir(tmp_path)  # the record names its case file relative to the working directory
    assert main(["repro", SCATTER, "--results", _write(tmp_path / "run.json", run)]) == 0
    script = capsys.readouterr().out
    assert "worse\\x1b]0;owned" in script and all(ch.isprintable() or ch == "\n" for ch in script)


def test_printable_escapes_every_control_and_format_character():
    assert printable("plain text, unicode é ✓") == "plain text, unicode é ✓"
    assert printable("a\x1b[2Jb\rc\nd\te\x7f\x9b\u202e\u2028") == "a\\x1b[2Jb\\rc\\nd\\te\\x7f\\x9b\\u202e\\u2028"
    assert printable("a\nb\tc\x1b", newlines=True) == "a\nb\tc\\x1b"
