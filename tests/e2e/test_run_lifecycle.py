"""A run is `complete` only when every collected check has a record; an interrupted run (SIGTERM,
a CI timeout) leaves what it did, marked incomplete, and never a stale file that looks current;
shards of one run merge into exactly the unsharded run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

from convt_conformance.library import CASES_DIR
from convt_conformance.results.store import read_results
from convt_conformance.run.collector import stream_path
from tests.conftest import ROOT

CASES_DOC = str(CASES_DIR / "documents")


def _cmd(results, *args):
    return [sys.executable, "-m", "convt_conformance", "run", "--results", str(results), *args]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_sigterm_leaves_an_incomplete_file_with_what_was_done(tmp_path):
    res, rep = tmp_path / "results.json", tmp_path / "report.html"
    res.write_text('{"schema": "conformance-results/1", "complete": true, "results": []}')  # a stale run
    rep.write_text("stale report")
    case = tmp_path / "hang-me.yaml"
    case.write_text((ROOT / "tests" / "data" / "lifecycle" / "hang_after_first.yaml").read_text())
    p = subprocess.Popen(_cmd(res, "--cases", str(case), "--frameworks", "numpy", "-n", "1", "--no-probes",
                              "--report", str(rep), "--", "-p", "tests.hang_plugin"),
                         cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait until some checks are done and the hang has begun
            s = stream_path(res)
            if s.exists() and len(s.read_text().splitlines()) >= 1:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("no record was streamed")
        assert not rep.exists()  # the stale report is gone as soon as the run starts
        assert json.loads(res.read_text())["complete"] is False
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
    finally:
        p.kill()
    data = read_results(res)
    assert data["complete"] is False, out[-2000:]
    assert len(data["results"]) >= 1 and data.get("missing_checks", 0) >= 1
    assert "NOT CLEAN" in out and "incomplete" in out
    assert not stream_path(res).exists()
    assert p.returncode != 0


def test_collected_checks_without_records_make_the_run_incomplete():
    from convt_conformance.run.collector import ResultsCollector

    class _Config:
        workerinput = None

    c = ResultsCollector.__new__(ResultsCollector)
    c.records, c.expected, c.state = {}, None, SimpleNamespace(unavailable={})
    group = "cases/g.yaml::@7:numpy.scatter-cpu-float64"
    c.expand = lambda nodeid: ["cases/g.yaml::g[numpy.scatter-cpu-float64]"] if nodeid == group else None
    assert c.missing() == ["<collection did not finish>"]
    c._expect(["cases/a.yaml::a[numpy.recipe-cpu-float32]", "cases/a.yaml::convention-probes"])
    c.records["cases/a.yaml::a[numpy.recipe-cpu-float32]"] = {}
    assert c.missing() == []
    c._expect(["cases/a.yaml::b[numpy.recipe-cpu-float32]", "cases/a.yaml::b[torch.conv_transpose1d-cpu-float32]"])
    assert c.missing() == ["cases/a.yaml::b[numpy.recipe-cpu-float32]",
                           "cases/a.yaml::b[torch.conv_transpose1d-cpu-float32]"]
    # the checks of a framework left out as unavailable are not missing (the verdict weighs it)
    c.state.unavailable["torch"] = "the worker setting it up died"
    assert c.missing() == ["cases/a.yaml::b[numpy.recipe-cpu-float32]"]
    # a group item's node id stands for its checks
    c._expect([group])
    assert c.missing() == ["cases/a.yaml::b[numpy.recipe-cpu-float32]", "cases/g.yaml::g[numpy.scatter-cpu-float64]"]


def test_two_shards_merge_into_the_unsharded_run(tmp_path):
    common = ["--cases", CASES_DOC, "--frameworks", "numpy,torch", "-n", "0", "--no-probes"]
    runs = {}
    for name, extra in (("all", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])):
        res = tmp_path / f"{name}.json"
        p = subprocess.run(_cmd(res, *common, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        runs[name] = res
    s1, s2 = (json.loads(runs[k].read_text()) for k in ("s1", "s2"))
    assert s1["results"] and s2["results"]
    assert s1["selection"]["digest"] == s2["selection"]["digest"]
    merged = tmp_path / "merged.json"

    def conformance(*args):
        return subprocess.run([sys.executable, "-m", "convt_conformance", *args], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=300)

    p = conformance("merge", str(merged), str(runs["s1"]), str(runs["s2"]))
    assert p.returncode == 0, p.stdout + p.stderr
    p = conformance("compare", str(runs["all"]), str(merged), "--exact")
    assert p.returncode == 0, p.stdout + p.stderr
    p = conformance("merge", str(tmp_path / "half.json"), str(runs["s1"]))
    assert p.returncode == 1 and "missing shard(s) 2/2" in p.stderr


def test_framework_that_dies_or_hangs_while_setting_up_is_left_out(tmp_path):
    """The preflight bounds a framework's set-up (import, configure, devices): one that aborts or
    hangs there is recorded unavailable with the reason; the other frameworks run."""
    crashy = ROOT / "tests" / "data" / "plugins" / "crashy"
    for mode, timeout, why in (("crash", "60", "died with signal 6"), ("hang", "30", "did not finish within 30 s")):
        res = tmp_path / f"{mode}.json"
        env = {**_env(), "PYTHONPATH": os.pathsep.join([str(ROOT), str(crashy)]), "CRASHY_MODE": mode}
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--results", str(res), "--cases", CASES_DOC,
                            "--frameworks", "numpy,crashy", "-n", "2", "--no-probes", "--setup-timeout", timeout],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert time.time() - t0 < 300
        data = read_results(res)
        assert why in data["environment"]["unavailable"]["crashy"], (p.stdout[-1500:], p.stderr[-1500:])
        assert {r["adapter"] for r in data["results"]} == {"numpy"} and data["complete"]
        assert "crashy is left out of this run" in p.stderr
        # crashy was named in --frameworks: not clean, the verdict says which and why
        assert p.returncode == 1 and "requested framework(s) cannot run: crashy (" in p.stdout, p.stdout[-1500:]


def test_checks_lost_with_a_worker_are_run_again(tmp_path):
    """A collected check with no record (xdist can lose the items of a crashed worker) is run
    once more by `conformance run`; the joined results are complete."""
    case = tmp_path / "lose-me.yaml"
    case.write_text((ROOT / "tests" / "data" / "lifecycle" / "hang_after_first.yaml").read_text()
                    .replace("hang-me", "lose-me"))
    res = tmp_path / "results.json"
    env = {**_env(), "LOSE_ME_MARK": str(tmp_path / "lost")}
    p = subprocess.run(_cmd(res, "--cases", str(case), "--frameworks", "numpy", "-n", "1", "--no-probes",
                            "--", "-p", "tests.lose_plugin"), cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert (tmp_path / "lost").exists(), p.stdout[-2000:]
    assert "running them once more" in p.stderr, p.stderr[-2000:]
    data = read_results(res)
    assert data["complete"] is True and data["rerun"]["checks"] == 1, data.get("rerun")
    assert {(r["api"], r["dtype"]) for r in data["results"]} >= {("scatter", "float32"), ("scatter", "float64")}
    assert p.returncode == 0, p.stdout[-2000:]
