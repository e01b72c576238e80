"""CI outputs: JUnit XML (one testcase per check, counts by status) and the Markdown summary."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

from convt_conformance.cli.main import main
from convt_conformance.model.status import Status, status_of
from convt_conformance.report.ci_outputs import markdown_summary, write_junit_xml, write_markdown_summary
from convt_conformance.results.findings import check_id_of, group_findings
from convt_conformance.results.verdict import run_verdict
from tests.conftest import DATA, ROOT

FIXTURE = DATA / "results_sample.json"


def _payload() -> dict:
    return json.loads(FIXTURE.read_text())


def _with_failures() -> dict:
    """The sample with one value failure (hostile message), one crash and one accepted-invalid."""
    p = _payload()
    passes = [r for r in p["results"] if r["status"] == Status.PASS.value]
    passes[0].update(status=Status.FAIL.value, failure_kind="value",
                     message='bad <x> & "y" \x01 ]]> value mismatch')
    passes[1].update(status=Status.CRASH.value, message="the process running this check died")
    passes[2].update(status=Status.ACCEPTED_INVALID.value, message="accepted")
    return p


def _expected_counts(p: dict) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for r in p["results"]:
        st = status_of(r["status"])
        c = out.setdefault(r["adapter"], Counter())
        c["tests"] += 1
        if st.unexpected:
            c["errors" if st in (Status.ERROR, Status.CRASH) else "failures"] += 1
        elif not st.ran or (r.get("underlying_status") and status_of(r["underlying_status"]).failing):
            c["skipped"] += 1
    return out


def test_junit_counts_match_the_results(tmp_path):
    for p in (_payload(), _with_failures()):
        path = tmp_path / "j.xml"
        write_junit_xml(path, p)
        root = ET.parse(path).getroot()
        assert root.tag == "testsuites" and int(root.get("tests")) == len(p["results"])
        expected = _expected_counts(p)
        suites = {s.get("name"): s for s in root.findall("testsuite")}
        assert set(suites) == set(expected)
        for name, suite in suites.items():
            for key in ("tests", "failures", "errors", "skipped"):
                assert int(suite.get(key)) == expected[name][key], (name, key)
            assert len(suite.findall("testcase")) == expected[name]["tests"]
        ids = {tc.get("name") for tc in root.iter("testcase")}
        assert ids == {check_id_of(r) for r in p["results"]}


def test_junit_testcase_fields_and_escaping(tmp_path):
    p = _with_failures()
    path = tmp_path / "j.xml"
    write_junit_xml(path, p)
    root = ET.parse(path).getroot()
    by_id = {tc.get("name"): tc for tc in root.iter("testcase")}
    for r in p["results"]:
        tc = by_id[check_id_of(r)]
        assert tc.get("classname") == f"{r['adapter']}.{r['api']}"
        props = {e.get("name"): e.get("value") for e in tc.iter("property")}
        assert (props["framework"], props["api"], props["dtype"], props["device"], props["status"]) == \
            (r["adapter"], r["api"], r["dtype"], r["device"], r["status"])
    failing = next(r for r in p["results"] if r["status"] == "fail")
    failure = by_id[check_id_of(failing)].find("failure")
    assert failure is not None and failure.get("type") == "value"
    assert '<x> & "y"' in failure.text and "\x01" not in failure.text
    crash = next(r for r in p["results"] if r["status"] == "crash")
    assert by_id[check_id_of(crash)].find("error") is not None
    xfail = next(r for r in p["results"] if r["status"] == "xfail")
    skipped = by_id[check_id_of(xfail)].find("skipped")
    assert skipped is not None and skipped.get("type") == "xfail" and "known disagreement" in skipped.get("message")


def test_markdown_has_verdict_counts_and_findings(tmp_path):
    clean = markdown_summary(_payload(), report_path="reports/conformance.html")
    assert "conformance: CLEAN" in clean and run_verdict(_payload()).line() in clean
    f = group_findings(_payload()["results"])[0]
    assert f["smallest_id"] in clean and f["reason"][:60] in clean
    assert "reports/conformance.html" in clean
    p = _with_failures()
    text = markdown_summary(p)
    assert "NOT CLEAN" in text and "3 unexpected" in text
    first = text.index("### Findings")
    assert text.index("`fail/value`", first) < text.index("`xfail/value`", first)  # unexpected first
    assert "<x>" not in text and "&lt;x&gt;" in text
    for r in p["results"]:  # every framework row with its total
        assert f"| {r['adapter']} |" in text


def test_markdown_stays_short_with_many_findings():
    p = _payload()
    template = next(r for r in p["results"] if r["status"] == "pass")
    for i in range(200):
        r = copy.deepcopy(template)
        r.update(adapter=["torch", "jax", "tensorflow"][i % 3], api=f"api{i}", status="fail", failure_kind="value",
                 case=f"c{i}", message="x" * 1000)
        p["results"].append(r)
    text = markdown_summary(p)
    assert len(text.splitlines()) <= 60 and "more finding(s)" in text


def test_markdown_appends_to_the_github_step_summary(tmp_path, monkeypatch):
    step = tmp_path / "summary.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    write_markdown_summary(step, _payload())
    assert step.read_text().startswith("earlier step\n## Transposed-convolution conformance")
    other = tmp_path / "other.md"
    other.write_text("old\n")
    write_markdown_summary(other, _payload())
    assert not other.read_text().startswith("old")


def test_report_command_writes_both(tmp_path, capsys):
    j, m = tmp_path / "j.xml", tmp_path / "s.md"
    assert main(["report", str(FIXTURE), "-o", str(tmp_path / "r.html"), "--junit-xml", str(j),
                 "--markdown-summary", str(m)]) == 0
    assert ET.parse(j).getroot().get("tests") == str(len(_payload()["results"]))
    assert "conformance: CLEAN" in m.read_text()


def test_run_command_writes_both(tmp_path):
    j, m, res = tmp_path / "j.xml", tmp_path / "s.md", tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--frameworks", "numpy", "--tags", "documents",
                           "-n", "0", "--no-probes", "--results", str(res), "--junit-xml", str(j),
                           "--markdown-summary", str(m)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(res.read_text())
    root = ET.parse(j).getroot()
    assert int(root.get("tests")) == len(data["results"]) > 0
    assert "verdict: CLEAN" in m.read_text()
