"""Findings first: grouping, the framework x dtype summary, margin plots and reproducers in the report."""

from __future__ import annotations

import copy
import html as html_lib
import json
import re

from convt_conformance.model.status import Status, status_of
from convt_conformance.report.data import check_rows, decode_data
from convt_conformance.report.html import render_report
from convt_conformance.report.margins import N_BINS, margin_comparison, margin_histograms, margin_svg, ratio_of
from convt_conformance.results.findings import case_size, framework_dtype_summary, group_findings, is_finding
from tests.conftest import DATA, ROOT

FIXTURE = DATA / "results_sample.json"
BASELINE = ROOT / "reports" / "baselines" / "results-tensorflow-2.21.0-cpu.json"


def _payload() -> dict:
    return json.loads(FIXTURE.read_text())


def _mutated() -> dict:
    """The sample plus two value failures of one API (two dtypes) and one crash."""
    p = _payload()
    torch_pass = [r for r in p["results"] if r["adapter"] == "torch" and r["status"] == "pass"]
    for r in torch_pass[:2]:
        r.update(status="fail", failure_kind="value", message="value mismatch")
    torch_pass[2].update(status="crash", failure_kind=None, message="died", native_call=None)
    return p


def test_groups_unexpected_first_with_coverage():
    p = _mutated()
    findings = group_findings(p["results"])
    assert [f["unexpected"] for f in findings] == sorted((f["unexpected"] for f in findings), reverse=True)
    covered = sum(f["count"] for f in findings)
    assert covered == sum(is_finding(r) for r in p["results"])
    value = next(f for f in findings if f["kind"] == "value" and f["adapter"] == "torch")
    recs = value["records"]
    assert value["count"] == len(recs) and value["dtypes"] == sorted({r["dtype"] for r in recs},
                                                                     key=["float16", "bfloat16", "float32",
                                                                          "float64"].index)
    assert case_size(value["smallest"]) == min(case_size(r) for r in recs)
    known = next(f for f in findings if not f["unexpected"])
    assert known["reason"] and status_of(known["status"]) is Status.XFAIL


def test_framework_dtype_summary_counts_every_check():
    p = _payload()
    s = framework_dtype_summary(p["results"])
    total = sum(n for row in s["rows"] for cell in row["cells"] if cell for _, n in cell["counts"])
    assert total == len(p["results"])


def test_margin_histogram_counts_and_svg_escaping():
    p = _payload()
    hists = margin_histograms(p["results"])
    with_ratio = [r for r in p["results"] if ratio_of(r) is not None]
    assert sum(h["n"] for h in hists.values()) == len(with_ratio) > 0
    for h in hists.values():
        assert len(h["ok"]) == len(h["bad"]) == N_BINS
        assert sum(h["ok"]) + sum(h["bad"]) + h["zero"] == h["n"]
    svg = margin_svg(next(iter(hists.values())), title='<script>alert("x")</script>')
    assert svg.startswith("<svg") and "<script>" not in svg and "&lt;script&gt;" in svg


def test_report_leads_with_findings_and_has_reproducers():
    p = _mutated()
    html = render_report(p)
    i_find, i_fd, i_margin, i_matrix = (html.index(s) for s in ('id="findings"', 'id="fw-dtype"', 'id="margins"',
                                                                 'id="matrix"'))
    assert i_find < i_fd < i_margin < i_matrix
    n_findings = sum(is_finding(r) for r in p["results"])
    n_distinct = len(group_findings(_mutated()["results"]))
    assert len(re.findall(r'<details id="repro-\d+"', html)) == n_distinct  # the smallest check's script, per finding
    assert html.count('class="copy" data-copy="repro-') >= 2 * n_distinct  # table + script
    # every finding check carries its `conformance repro` command (the page adds a copy button)
    assert sum(bool(r["check_id"]) for r in check_rows(decode_data(html))) == n_findings
    assert "REPRODUCED" in html  # the common part of the scripts, shown once
    assert html.count('id="repro-common-src"') == 1


def test_comparison_shows_base_and_new_margins():
    base = _payload()
    new = copy.deepcopy(base)
    html = render_report(new, baseline=base, baseline_path="base.json")
    pairs = margin_comparison(base["results"], new["results"])
    assert pairs and html.count("baseline: ") >= len(pairs) and 'id="margins-compare"' in html


def test_baseline_report_stays_small():
    p = json.loads(BASELINE.read_text())
    html = render_report(p)
    assert len(html.encode()) <= 2 * 1024 * 1024
    assert sum(bool(r["check_id"]) for r in check_rows(decode_data(html))) == sum(is_finding(r) for r in p["results"])


def test_copied_script_is_the_reproducer():
    """What the copy button copies (the check's <pre> text, then the common part's; a browser
    drops the newline right after <pre>) is exactly `conformance repro`'s script. The fixture is a
    run of the current format (its native calls name their calls.py function)."""
    from convt_conformance.repro.scripts import COMMON_TAIL, script_for
    from convt_conformance.results.store import read_results

    def fresh() -> dict:
        return read_results(DATA / "results_repro.json")

    p = fresh()
    html = render_report(p)
    rec = group_findings(fresh()["results"])[0]["smallest"]
    assert script_for(fresh(), rec).endswith(COMMON_TAIL)  # a real reproducer, not a refusal
    anchor = "repro-0"  # the first finding's smallest check

    def pre_text(pre_id: str) -> str:
        m = re.search(rf'<pre id="{pre_id}">(.*?)</pre>', html, re.S)
        text = html_lib.unescape(m.group(1))
        return text[1:] if text.startswith("\n") else text

    copied = pre_text(f"{anchor}-src") + pre_text("repro-common-src")
    assert copied == script_for(fresh(), rec)
