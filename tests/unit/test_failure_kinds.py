"""The failure kinds (convt_conformance/model/status.py FailureKind): every producer emits one, a
known disagreement's `kind` is checked against them, and their values are the results file's."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import convt_conformance
from convt_conformance.checking.check import run_check
from convt_conformance.checking.compare import compare
from convt_conformance.library import KNOWN_FILE
from convt_conformance.loading.known import load_known
from convt_conformance.loading.yaml_io import load_yaml_file
from convt_conformance.model.dtypes import finfo
from convt_conformance.model.outcome import FAILING_OUTCOMES
from convt_conformance.model.record import CheckRecord
from convt_conformance.model.status import FailureKind, Status
from convt_conformance.run.collector import crash_record
from tests.conftest import DATA
from tests.unit.test_verdict_strength import LONG, _Planted

PACKAGE = Path(convt_conformance.__file__).parent
SAMPLE = DATA / "results_sample.json"

#: the results file's values (a format: `conformance-results/3` readers depend on them)
STORED = {"VALUE": "value", "SHAPE": "shape", "NONFINITE": "nonfinite", "SUBNORMAL_FLUSH": "subnormal-flush",
          "DTYPE": "dtype", "TIMEOUT": "timeout", "CRASH": "crash"}


def test_the_stored_values_are_the_format():
    assert {k.name: k.value for k in FailureKind} == STORED
    # every failing outcome a known disagreement may expect is a failing status, with a kind for a fail
    assert {o.split("/")[0] for o in FAILING_OUTCOMES} == {s.value for s in Status if s.failing}
    assert {o.split("/")[1] for o in FAILING_OUTCOMES if "/" in o} <= set(STORED.values())


def test_compare_emits_failure_kinds():
    tol = np.full(3, 1e-6)
    one = np.ones(3)
    tiny, sub = float(finfo("float32").tiny), float(finfo("float32").smallest_subnormal)
    exact = np.array([8 * sub, 1.0])
    floor = 2 * tiny
    sub_tol = np.array([floor + 1e-3 * 8 * sub, floor + 1e-3])
    got = {
        FailureKind.SHAPE: compare(np.ones(2), one, tol, "float32"),
        FailureKind.NONFINITE: compare(np.array([1.0, np.nan, 1.0]), one, tol, "float32"),
        FailureKind.VALUE: compare(np.array([1.0, 2.0, 1.0]), one, tol, "float32"),
        FailureKind.SUBNORMAL_FLUSH: compare(np.array([0.0, 1.0]), exact, sub_tol, "float32", floor=floor),
    }
    for kind, res in got.items():
        assert not res.ok and res.kind is kind, (kind, res.message)
    ok = compare(one, one, tol, "float32")
    assert ok.ok and ok.kind is None


def test_run_check_emits_failure_kinds():
    rec = run_check(LONG, _Planted(lambda c, x, w, b, y, dt: y, native_dtype="float64"), "conv_transpose",
                    "cpu", "float16", "strict", [])
    assert rec.status is Status.FAIL and rec.failure_kind is FailureKind.DTYPE
    assert rec.as_dict()["failure_kind"] == "dtype" and type(rec.as_dict()["failure_kind"]) is str


def test_crash_records_emit_failure_kinds(tmp_path):
    nodeid = "cases/x.yaml::doc-basic-2x2[numpy.scatter-cpu-float32]"
    said = "worker 'gw0' crashed while running this"
    state = SimpleNamespace(precision="strict", watchdog_dir=str(tmp_path))
    died = crash_record(nodeid, said, state, 10.0, crashed=True)  # type: ignore[arg-type]
    assert (died.status, died.failure_kind) == (Status.CRASH, FailureKind.CRASH)
    assert died.failure_kind is FailureKind.CRASH
    (tmp_path / "gw0-1.txt").write_text(f"{nodeid}\nTimeout (0:00:10)!\nThread 0x1 (most recent call first):\n"
                                        '  File "x.py", line 1 in f\n')
    stopped = crash_record(nodeid, said, state, 10.0, crashed=True)  # type: ignore[arg-type]
    assert stopped.status is Status.CRASH and stopped.failure_kind is FailureKind.TIMEOUT


def _assigned_kinds(tree: ast.AST) -> list[tuple[int, ast.expr]]:
    """Every value assigned to a ``failure_kind`` (attribute, keyword) or a comparison's ``kind``."""
    out: list[tuple[int, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                values = node.value.elts if isinstance(node.value, ast.Tuple) and isinstance(target, ast.Tuple) \
                    else [node.value]
                for name, value in zip(names, values):
                    if isinstance(name, ast.Attribute) and name.attr in ("failure_kind", "kind"):
                        out.append((node.lineno, value))
        elif isinstance(node, ast.keyword) and node.arg == "failure_kind":
            out.append((node.value.lineno, node.value))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Comparison" and len(node.args) > 1:
            out.append((node.lineno, node.args[1]))
    return out


def test_no_producer_spells_a_failure_kind_as_text():
    """A failure kind is written as a FailureKind member wherever a record or a comparison gets
    one, never as a string (a typo there would be a new kind)."""
    spelled, producers = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, value in _assigned_kinds(ast.parse(path.read_text(encoding="utf-8"))):
            producers.add(path.relative_to(PACKAGE).as_posix())
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                spelled.append(f"{path.relative_to(PACKAGE)}:{line}: {value.value!r}")
    assert spelled == []
    assert {"checking/check.py", "checking/compare.py", "run/collector.py", "run/isolate.py"} <= producers


def test_every_kind_in_a_results_file_is_a_failure_kind():
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    kinds = {r["failure_kind"] for r in data["results"] if r.get("failure_kind")}
    assert kinds and kinds <= {k.value for k in FailureKind}
    assert {r["status"] for r in data["results"]} <= {s.value for s in Status}
    for raw in data["results"]:
        rec = CheckRecord.from_dict(raw)
        assert isinstance(rec.status, Status)
        assert rec.failure_kind is None or isinstance(rec.failure_kind, FailureKind)
        assert rec.as_dict() == raw and json.loads(json.dumps(rec.as_dict())) == raw


def test_every_outcome_in_the_packaged_known_disagreements_is_known():
    data, why = load_yaml_file(KNOWN_FILE)
    assert why is None
    outcomes = {o for e in data["disagreements"] for o in ([e["outcome"]] if isinstance(e["outcome"], str) else e["outcome"])}
    assert outcomes and outcomes <= set(FAILING_OUTCOMES)
    assert {f"fail/{k.value}" for k in (FailureKind.VALUE, FailureKind.SHAPE, FailureKind.NONFINITE)} <= outcomes
    entries, problems = load_known(KNOWN_FILE)
    assert problems == [] and len(entries) == len(data["disagreements"])


def _known_file(tmp_path: Path, outcomes: list[str]) -> Path:
    f = tmp_path / "known.yaml"
    f.write_text("disagreements:\n" + "".join(
        f"  - id: c{i}\n    case: c{i}\n    adapter: torch\n    versions: {{torch: '>=2'}}\n"
        f"    outcome: {json.dumps(o)}\n    reason: r\n" for i, o in enumerate(outcomes)))
    return f


def test_a_mistyped_outcome_is_a_located_load_problem(tmp_path):
    f = _known_file(tmp_path, ["fail/value", "fail/valeu", "crash"])
    entries, problems = load_known(f)
    assert [e.case for e in entries] == ["c0", "c2"]
    assert len(problems) == 1
    assert problems[0].startswith(f"{f}: disagreements[1] (c1): outcome: unknown outcome 'fail/valeu'; allowed: fail/value")
    assert all(o in problems[0] for o in FAILING_OUTCOMES)


@pytest.mark.parametrize("outcome,ok", [("*", True), ("fail/*", True), ("error", True), ("accepted-invalid", True),
                                        ("crash/timeout", True), ("fail", False), ("pass", False), ("z*", False),
                                        ("value", False), ("Fail/value", False)])
def test_outcome_is_a_failing_outcome_or_a_glob_matching_one(tmp_path, outcome, ok):
    entries, problems = load_known(_known_file(tmp_path, [outcome]))
    assert (len(entries), len(problems)) == ((1, 0) if ok else (0, 1)), problems
