"""The conformance run: pytest plugin, xdist, results file, exit codes, crash isolation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convt_conformance.library import CASES_DIR
from convt_conformance.results.store import read_results
from tests.conftest import DATA, ROOT

CASES_DOC = str(CASES_DIR / "documents")


def _run(tmp_path, *args, env=None):
    res = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "convt_conformance", "run", "--results", str(res), *args]
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=e, timeout=600)
    data = read_results(res) if res.exists() else None
    return p, data


def test_numpy_run_results_file(tmp_path):
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--frameworks", "numpy", "-n", "2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert data["schema"] == "conformance-results/3" and data["complete"] is True
    env = data["environment"]
    assert env["precision"] == "strict" and env["frameworks"]["numpy"]
    assert env["framework_devices"] == {"numpy": ["cpu"]}  # from the xdist workers
    statuses = {r["status"] for r in data["results"]}
    assert statuses <= {"pass", "unsupported"} and "pass" in statuses
    r = next(r for r in data["results"] if r["case"] == "doc-basic-2x2" and r["api"] == "recipe"
             and r["dtype"] == "float32")
    for key in ("shape", "expected_shape", "max_abs_err", "max_rel_err", "max_ulp", "tolerance",
                "native_call", "message", "device", "adapter"):
        assert key in r
    assert r["shape"] == [1, 1, 3, 3] and r["max_abs_err"] == 0.0
    # one record per check, no duplicates
    keys = [(r["case"], r["adapter"], r["api"], r["device"], r["dtype"]) for r in data["results"]]
    assert len(keys) == len(set(keys))


def test_k_selection_and_ids(tmp_path):
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--frameworks", "numpy", "-n", "0",
                   "--", "-k", "doc-basic-2x2 and recipe and float32", "-vv")
    assert p.returncode == 0, p.stdout + p.stderr
    assert ":numpy.recipe-cpu-float32 PASSED" in p.stdout  # the group item holding the check
    assert "::doc-basic-2x2[numpy.recipe-cpu-float32] PASS" in p.stdout  # and a line for the check
    assert [(r["case"], r["api"], r["dtype"]) for r in data["results"]] == [("doc-basic-2x2", "recipe", "float32")]


@pytest.mark.parametrize("workers", ["0", "2"])
def test_k_selects_one_check_of_a_group_and_m_whole_groups(tmp_path, workers):
    """``-k`` on a check id runs that check alone, though its group item holds others; ``-m`` on
    a dtype marker runs the checks of that dtype (convt_conformance/run/grouping.py)."""
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--frameworks", "numpy", "-n", workers,
                   "--", "-k", "doc-basic-2x2[numpy.scatter-cpu-float64]")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert [(r["case"], r["api"], r["dtype"]) for r in data["results"]] == [("doc-basic-2x2", "scatter", "float64")]
    assert data["complete"] is True and data["selection"]["selected_checks"] == 1
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--frameworks", "numpy", "-n", workers, "--", "-m", "float16")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert data["results"] and {r["dtype"] for r in data["results"]} == {"float16"} and data["complete"] is True


def test_failing_case_exit_code(tmp_path):
    bad = tmp_path / "wrong.yaml"
    bad.write_text("""
cases:
  - id: wrong-values
    input: {values: [[[[0, 1], [2, 3]]]]}
    weight: {values: [[[[0, 1], [2, 3]]]]}
    expected: {shape: [1, 1, 3, 3], values: [[0, 0, 1], [0, 4, 6], [4, 12, 10]]}
""")
    p, data = _run(tmp_path, "--cases", str(bad), "--frameworks", "numpy", "-n", "0")
    assert p.returncode == 1
    r = next(r for r in data["results"] if r["api"] == "scatter")
    assert r["status"] == "fail" and r["failure_kind"] == "value"
    assert "index (0, 0, 2, 2)" in r["message"] and "expected 10.0" in r["message"]


def test_bad_case_file_does_not_hide_others(tmp_path):
    p, data = _run(tmp_path, "--cases", str(DATA / "bad" / "ragged_and_shapes.yaml"),
                   "--frameworks", "numpy", "-n", "0")
    assert p.returncode == 1
    assert any("cin-mismatch" in x for x in data["problems"])
    assert {r["case"] for r in data["results"]} == {"good-one"}


def _one_case_file(tmp_path, case_id: str):
    """A one-case file (float32 and float64) whose id a test plugin (crash, hang) keys on."""
    f = tmp_path / f"{case_id}.yaml"
    f.write_text("""
defaults: {dtypes: [float32, float64]}
cases:
  - id: CASE_ID
    input: {values: [[[1, 2]]]}
    weight: {values: [[[1, 1]]]}
    expected: {shape: [1, 1, 3], values: [[[1, 3, 2]]]}
""".replace("CASE_ID", case_id))
    return f


def test_crash_costs_one_check(tmp_path):
    f = _one_case_file(tmp_path, "crash-me")
    p, data = _run(tmp_path, "--cases", str(f), "--frameworks", "numpy", "-n", "1",
                   "--", "-p", "tests.crash_plugin")
    assert p.returncode == 1
    by = {(r["api"], r["dtype"]): r["status"] for r in data["results"]}
    assert by[("scatter", "float32")] == "crash"
    assert by[("scatter", "float64")] == "pass"
    assert by[("recipe", "float64")] == "pass"
    # A known crash (kind: crash) is an expected failure: recorded with its reason, exit 0.
    known = tmp_path / "known.yaml"
    known.write_text('disagreements:\n  - {id: crash-me, case: crash-me, dtype: float32, versions: {numpy: ">=1"},'
                     ' outcome: crash, reason: "aborts"}\n')
    p, data = _run(tmp_path, "--cases", str(f), "--frameworks", "numpy", "-n", "1", "--known", str(known),
                   "--", "-p", "tests.crash_plugin")
    assert p.returncode == 0, p.stdout[-2000:]
    crashed = [r for r in data["results"] if r["dtype"] == "float32"]
    assert {r["status"] for r in crashed} == {"xfail"}
    assert {r["underlying_status"] for r in crashed} == {"crash"}
    assert crashed[0]["known"]["reason"] == "aborts"


def _three_case_file(tmp_path, middle: str):
    """Three cases whose checks share group items (one case file, one column and dtype each):
    ``a-first``, ``middle`` (the one a test plugin keys on), ``z-last``."""
    f = tmp_path / f"{middle}-group.yaml"
    f.write_text("defaults: {dtypes: [float32, float64]}\ncases:\n" + "".join(f"""
  - id: {cid}
    input: {{values: [[[1, 2]]]}}
    weight: {{values: [[[1, 1]]]}}
    expected: {{shape: [1, 1, 3], values: [[[1, 3, 2]]]}}
""" for cid in ("a-first", middle, "z-last")))
    return f


@pytest.mark.parametrize(("middle", "plugin", "kind"), [("crash-me", "tests.crash_plugin", "crash"),
                                                         ("hang-me", "tests.hang_plugin", "timeout")])
def test_a_crash_or_hang_inside_a_group_item_costs_one_check(tmp_path, middle, plugin, kind):
    """The worker dies (abort, or the watchdog's time limit) in the middle check of a group item:
    that check is the crash, named exactly; the checks before it keep the records the worker
    streamed, those after it are run again; every other check passes and the run is complete."""
    f = _three_case_file(tmp_path, middle)
    p, data = _run(tmp_path, "--cases", str(f), "--frameworks", "numpy", "-n", "1", "--no-probes",
                   "--check-timeout", "5", "--", "-p", plugin)
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    bad = [r for r in data["results"] if r["status"] != "pass"]
    assert bad and {(r["case"], r["dtype"], r["status"], r["failure_kind"]) for r in bad} == \
        {(middle, "float32", "crash", kind)}, bad
    apis = {r["api"] for r in data["results"]}
    assert sorted(r["api"] for r in bad) == sorted(apis)  # each column's group item died at that check
    keys = {(r["case"], r["api"], r["dtype"]) for r in data["results"]}
    assert len(keys) == len(data["results"]) == 3 * 2 * len(apis)  # one record a check, none missing
    assert data["complete"] is True
    assert 0 < data["rerun"]["checks"] <= len(bad), data["rerun"]  # only the checks after each death ran again


def test_crash_record_has_the_shape_of_any_record(tmp_path):
    """A crash record carries its case's file, tags, parameters and expected shape like any other
    record (without one the report would file a known crash under "untagged"), also
    when it is the only record of its case (``--dtypes float32``: nothing else names the case)."""
    f = _one_case_file(tmp_path, "crash-me")
    f.write_text(f.read_text().replace("    input:", "    tags: [crashy]\n    input:"))
    for dtypes in ("float32,float64", "float32"):
        p, data = _run(tmp_path, "--cases", str(f), "--frameworks", "numpy", "-n", "1", "--no-probes",
                       "--dtypes", dtypes, "--", "-p", "tests.crash_plugin")
        assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
        crashed = next(r for r in data["results"] if r["status"] == "crash")
        ran = next((r for r in data["results"] if r["status"] == "pass"), None)
        assert crashed["file"] == str(f) and crashed["tags"] == ["crashy"], crashed
        assert crashed["params"]["input_shape"] == [1, 1, 2] and crashed["expected_shape"] == [1, 1, 3]
        assert crashed["framework_version"] and crashed["precision"] == "strict"
        assert crashed["expected_error"] is False and crashed["failure_kind"] == "crash"
        if ran is not None:  # the same keys as a record of a check that ran
            assert set(crashed) - {"crash_output"} == set(ran) - {"native_dtype", "compute_dtype"}
            assert {k: crashed[k] for k in ("file", "tags", "params", "source")} == \
                {k: ran[k] for k in ("file", "tags", "params", "source")}


def test_hung_check_costs_one_check(tmp_path):
    """A check that never returns is stopped by the worker's watchdog and recorded as a timeout."""
    f = _one_case_file(tmp_path, "hang-me")
    p, data = _run(tmp_path, "--cases", str(f), "--frameworks", "numpy", "-n", "1", "--check-timeout", "3",
                   "--no-probes", "--", "-p", "tests.hang_plugin")
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    by = {(r["api"], r["dtype"]): r for r in data["results"]}
    hung = by[("scatter", "float32")]
    assert hung["status"] == "crash" and hung["failure_kind"] == "timeout", hung
    assert "no result within --check-timeout 3 s" in hung["message"] and "hang_plugin.py" in hung["message"]
    assert by[("scatter", "float64")]["status"] == "pass"
    assert len([r for r in data["results"] if r["dtype"] == "float32"]) == 3  # one record per check


@pytest.mark.skipif(not all(__import__("importlib").util.find_spec(m) for m in ("torch", "tensorflow", "jax")),
                    reason="needs torch, tensorflow and jax installed")
def test_documents_pass_on_every_framework(tmp_path):
    """Acceptance: every documents' case passes on every framework on CPU in float32,
    or carries a specific recorded reason (unsupported / known disagreement)."""
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--dtypes", "float32", "-n", "2")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for r in data["results"]:
        assert r["status"] in ("pass", "unsupported", "xfail"), r
        if r["status"] != "pass":
            assert r["message"] or r["known"]
    adapters = {r["adapter"] for r in data["results"] if r["status"] == "pass"}
    from convt_conformance.adapters import adapter_names, get_adapter

    assert adapters == {n for n in adapter_names() if get_adapter(n).installed()}  # keras: every backend column


def test_broken_framework_reported_unavailable(tmp_path):
    """A requested framework that fails to import is reported as unavailable, the run goes on, and
    its verdict is not clean, naming the framework and why."""
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--frameworks", "numpy,tensorflow", "-n", "2",
                   env={"PYTHONPATH": f"{DATA / 'broken_framework'}{os.pathsep}{ROOT}"})
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    assert "simulated broken tensorflow install" in data["environment"]["unavailable"]["tensorflow"]
    assert {r["adapter"] for r in data["results"]} == {"numpy"}
    verdict = p.stdout.strip().splitlines()[-1]
    assert verdict.startswith("verdict: NOT CLEAN: 1 requested framework(s) cannot run: tensorflow ("), verdict
    assert "simulated broken tensorflow install" in verdict


def test_precision_default_is_recorded(tmp_path):
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--frameworks", "numpy", "-n", "0",
                   "--precision", "default", "--", "-k", "doc-basic-2x2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert data["environment"]["precision"] == "default"
    assert {r["precision"] for r in data["results"]} == {"default"}


def _torch_sees_gpu() -> bool:
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed: the GPU-requirement tests need one GPU-capable framework")
    return torch.cuda.is_available()


def test_require_gpu_fails_loudly_without_gpu(tmp_path):
    if _torch_sees_gpu():
        pytest.skip("torch sees a GPU on this machine: the no-GPU failure cannot be shown here")
    p, data = _run(tmp_path, "--cases", CASES_DOC, "--frameworks", "numpy,torch", "-n", "0",
                   "--device", "gpu", "--require-gpu", "--no-probes")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "NO GPU CHECK RAN for torch" in p.stderr and "sees cpu" in p.stderr
    assert data["environment"]["framework_devices"]["torch"] == ["cpu"]


def test_require_gpu_names_each_framework_without_gpu_checks():
    from convt_conformance.cli.main import frameworks_without_gpu_checks

    data = {"results": [{"adapter": "torch", "device": "gpu"}, {"adapter": "jax", "device": "cpu"},
                        {"adapter": "numpy", "device": "cpu"}]}
    assert frameworks_without_gpu_checks(data, ["numpy", "torch", "jax", "tensorflow"]) == ["jax", "tensorflow"]


def test_devices_command_reports_and_requires_gpu():
    sees_gpu = _torch_sees_gpu()
    cmd = [sys.executable, "-m", "convt_conformance", "devices", "--frameworks", "numpy,torch", "--require-gpu"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "numpy " in p.stdout and "torch " in p.stdout
    if sees_gpu:
        assert p.returncode == 0 and "cpu, gpu" in p.stdout
    else:
        assert p.returncode == 2, p.stdout + p.stderr
        assert "NO GPU visible to torch" in p.stderr
