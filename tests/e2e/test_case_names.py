"""`conformance run` over case files of any name: `a::b.yaml`, `x[1].yaml`, `-dash.yaml` were
parsed by pytest as node ids or options (the whole run collected nothing, said `complete: true`
with 0 records, and under xdist never named the file); a known_disagreements file given as a case
file was dropped silently. Now every file runs or is a named problem of that file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import convt_conformance
from tests.conftest import ROOT

PACKAGE_PARENT = str(Path(convt_conformance.__file__).resolve().parent.parent)  # the package under test
CASE = """cases:
  - id: {cid}
    input: {{shape: [1, 1, 2], values: [[[1, 2]]]}}
    weight: {{shape: [1, 1, 2], values: [[[1, 1]]]}}
    stride: {stride}
    expected: {{shape: [1, 1, 3]}}
"""
GOOD = {"good1.yaml": "good-one", "good2.yaml": "good-two", "a::b.yaml": "odd-colons", "x[1].yaml": "odd-bracket",
        "-dash.yaml": "odd-dash"}
BAD = "b::[bad].yaml"  # a name pytest would misparse, holding a float stride
KNOWN = "known_disagreements_extra.yaml"


def _cases(root: Path) -> Path:
    d = root / "cases"
    d.mkdir()
    for name, cid in GOOD.items():
        (d / name).write_text(CASE.format(cid=cid, stride=1))
    (d / BAD).write_text(CASE.format(cid="bad-stride", stride=1.0))
    (d / KNOWN).write_text(CASE.format(cid="in-known-file", stride=1))
    return d


def _run(cwd: Path, results: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([PACKAGE_PARENT, str(ROOT)])}
    p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--frameworks", "numpy", "--no-probes",
                        "--results", str(results), *args], cwd=cwd, capture_output=True, text=True, env=env,
                       timeout=300)
    return p, json.loads(results.read_text())


@pytest.mark.parametrize("workers", ["0", "2"])
def test_files_of_any_name_run_or_are_named_problems(tmp_path, workers):
    """Relative names from the working directory (`-dash.yaml` as given) under -n 0, absolute
    ones under xdist: the good files' checks all run, the bad file and the known-disagreements
    file given as a case file are each one problem naming them."""
    d = _cases(tmp_path)
    if workers == "0":
        p, data = _run(d, tmp_path / "r.json", "-n", "0", "--cases", ".", "--add-cases", KNOWN)
    else:
        p, data = _run(tmp_path, tmp_path / "r.json", "-n", "2", "--cases", str(d), "--add-cases", str(d / KNOWN))
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-3000:]  # the two problems make it unclean
    assert data["complete"] is True, out[-3000:]
    by_case: dict[str, set[str]] = {}
    for r in data["results"]:
        by_case.setdefault(r["case"], set()).add(r["api"])
    assert by_case == {cid: {"recipe", "matrix"} for cid in GOOD.values()}, out[-3000:]
    assert {r["status"] for r in data["results"]} == {"pass"}
    problems = data["problems"]
    assert len(problems) == 2, problems
    assert any(BAD in x and "bad-stride" in x and "1.0 is a float" in x for x in problems), problems
    assert any(KNOWN in x and "pass it with --known" in x for x in problems), problems
    assert "file or directory not found" not in out


def test_a_run_that_collects_no_check_is_not_complete(tmp_path):
    """0 checks collected from the files given (here a tag nothing has) was `complete: true`."""
    d = _cases(tmp_path)
    p, data = _run(tmp_path, tmp_path / "r.json", "-n", "0", "--cases", str(d / "good1.yaml"), "--tags", "no-such-tag")
    assert p.returncode == 1, (p.stdout + p.stderr)[-3000:]
    assert data["complete"] is False and data["results"] == []
    assert "CLEAN (" not in p.stdout + p.stderr
