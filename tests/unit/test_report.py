"""The HTML report: structure, escaping, no external fetches, size, and a real browser."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser

import pytest

from convt_conformance.report.data import check_rows, decode_data, report_text
from convt_conformance.report.headless import Page, find_chromium
from convt_conformance.report.html import render_report
from convt_conformance.results.regression import compare_results
from tests.conftest import DATA

FIXTURE = DATA / "results_sample.json"


def _payload() -> dict:
    return json.loads(FIXTURE.read_text())


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.scripts_src = 0

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v is not None:
                self.urls.append((tag, k, v))
        if tag in ("script", "img", "link", "iframe") and any(k == "src" for k, _ in attrs):
            self.scripts_src += 1


def test_every_result_appears_and_counts_match():
    p = _payload()
    html = render_report(p)
    rows = check_rows(decode_data(html))
    key = ("case", "adapter", "api", "device", "dtype", "status")
    assert sorted(tuple(r[k] for k in key) for r in rows) == sorted(tuple(r[k] for k in key) for r in p["results"])
    counts: dict[str, int] = {}
    for r in p["results"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    for status, n in counts.items():
        assert f">{status} {n}</span>" in html


def test_hostile_text_is_escaped():
    p = _payload()
    evil = '<script>alert("x")</script> "quoted" \'single\' <img src=x onerror=alert(1)>'
    for r in p["results"]:
        r["source"] = evil
        r["description"] = evil
        r["message"] = evil
    html = render_report(p)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html  # the findings table (static)
    assert html.count("<script>") == 1  # the report's own script only (the data block is base64)
    assert evil in decode_data(html)["strings"]  # the page's script escapes it (test_report_in_headless_chromium)


def test_extreme_finite_numbers_render():
    """Numbers are shortened to 4 digits in the report's data; near the float64 maximum that would
    round past it (1.798e308 is Inf), which JSON cannot hold: a broken release's output of
    float64-max values once made the report fail. They stay finite, and as large."""
    import sys

    p = _payload()
    big = sys.float_info.max
    failing = p["results"][0]
    failing.update(status="fail", failure_kind="value", max_abs_err=big, max_rel_err=big, message="m",
                   arrays={"slices": [{"index": [0, 0], "expected": [[1.0]], "actual": [[big]], "bad": [[1]]}]})
    rows = check_rows(decode_data(render_report(p)))
    row = next(r for r in rows if r["status"] == "fail")
    assert row["arrays"][0]["actual"] == [[big]]


def test_rendering_leaves_the_records_as_they_were():
    """The report's reproducers sit on its findings, not on the records: `conformance run` writes
    the same payload again after a rerun, and the results file must not carry report text."""
    p = _payload()
    p["results"][0].update(status="fail", failure_kind="value", message="m", max_abs_err=1.0)
    before = copy.deepcopy(p["results"])
    html = render_report(p)
    assert "Reproducers of the smallest check" in html
    assert p["results"] == before


def test_no_external_urls_except_user_links():
    p = _payload()
    p["results"][0]["known"] = {"reason": "r", "issue": "https://github.com/example/repo/issues/1"}
    p["results"][1]["known"] = {"reason": "r", "issue": "javascript:alert(1)"}
    html = render_report(p)
    parser = _Links()
    parser.feed(html)
    assert parser.scripts_src == 0
    assert parser.urls  # the report's own anchors at least: the walk below checked something
    for tag, attr, url in parser.urls:
        assert url.startswith("#") or url == "https://github.com/example/repo/issues/1", (tag, attr, url)
    assert 'href="javascript:' not in html
    # in the data block both are text; the page's script makes a link of http(s) URLs only
    assert "https://github.com/example/repo/issues/1" in report_text(html)
    assert "/^https?:\\/\\/[^\\s\"]+$/.test(link)" in html


def test_baseline_section_regressions_first():
    base = _payload()
    new = copy.deepcopy(base)
    victim = next(r for r in new["results"] if r["status"] == "pass")
    victim["status"], victim["message"] = "fail", "value mismatch"
    comp = compare_results(base, new)
    assert len(comp["regressions"]) == 1
    html = render_report(new, baseline=base, baseline_path="base.json")
    i_reg, i_imp = html.index("Regressions (1)"), html.index("Improvements (0)")
    assert i_reg < i_imp


def test_size_of_2000_results_under_5mb():
    p = _payload()
    template = p["results"]
    big = []
    i = 0
    while len(big) < 2000:
        r = copy.deepcopy(template[i % len(template)])
        r["case"] = f"{r['case']}-{i // len(template)}"
        big.append(r)
        i += 1
    p["results"] = big
    size = len(render_report(p).encode())
    assert size < 5 * 1024 * 1024, size


@pytest.mark.browser
def test_report_in_headless_chromium(tmp_path):
    """A real browser draws the matrix (one row per case) and, following a case's link, its
    check table, with hostile text shown as text; the data loads well within a second."""
    if not find_chromium():
        pytest.skip("Debian's chromium is not installed (scripts/run-tests.sh installs it as root)")
    p = _payload()
    evil = '<img src=x onerror=alert(1)>'
    p["results"][0]["message"] = evil
    page = tmp_path / "report.html"
    page.write_text(render_report(p))
    n_cases = len({r["case"] for r in p["results"]})
    first = p["results"][0]["case"]
    with Page() as browser:
        t = browser.open(page.as_uri(), ready="window.__reportReady === true", timeout=60)
        assert t["ready_s"] < 30
        assert browser.evaluate('document.querySelectorAll("#matrix tr.case-row").length') == n_cases
        assert browser.evaluate('document.getElementById("filters").hidden') is False
        browser.evaluate(f"location.hash = {json.dumps('case-' + first)}")
        deadline = 50
        while deadline and not browser.evaluate(f"!!document.getElementById({json.dumps('case-' + first)})"):
            deadline -= 1
            __import__("time").sleep(0.1)
        n_rows = browser.evaluate(f"document.getElementById({json.dumps('case-' + first)}).querySelectorAll('tr').length")
        assert n_rows == 1 + sum(r["case"] == first for r in p["results"])
        assert browser.evaluate("document.querySelectorAll('#case-details img').length") == 0
        assert evil in browser.evaluate("document.getElementById('case-details').textContent")
        shot = tmp_path / "shot.png"
        browser.screenshot(shot)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_large_failing_output_gets_heatmap(monkeypatch):
    """Outputs larger than 16x16 per channel show an inline-SVG error heat map, not grids."""
    from convt_conformance.adapters import get_adapter
    from convt_conformance.checking.check import run_check
    from convt_conformance.loading.cases import Case, TensorSpec
    from convt_conformance.model.spec import ConvSpec
    from convt_conformance.results.store import SCHEMA

    case = Case(id="big", file="<test>", source="", description="", tags=("t",),
                input=TensorSpec((1, 1, 20, 20), random={"distribution": "uniform", "seed": 1}),
                weight=TensorSpec((1, 1, 4, 4), random={"distribution": "uniform", "seed": 2}),
                bias=None, spec=ConvSpec((1, 1, 20, 20), (1, 1, 4, 4), None, (2, 2), ((1, 1), (1, 1)), (0, 0), (1, 1)),
                dtypes=("float64",), expected_shape=None,
                expected_values=None, expected_error=False, tolerance=None, frameworks=None,
                frameworks_reason="")
    a = get_adapter("numpy")
    orig = a.run

    def perturbed(*args):
        out = orig(*args)
        out.array[0, 0, 5, 7] += 1.0
        return out

    monkeypatch.setattr(a, "run", perturbed)
    rec = run_check(case, a, "recipe", "cpu", "float64", "strict", [])
    assert rec["status"] == "fail" and rec["arrays"]["small"] is False
    html = render_report({"schema": SCHEMA, "complete": True, "environment": {}, "results": [rec.as_dict()]})
    (row,) = check_rows(decode_data(html))
    assert row["arrays"] and all("heatmap" in sl and sl["shape"] == [40, 40] for sl in row["arrays"])
    assert not any("actual" in sl for sl in row["arrays"])  # no value grids for a large output
    assert "|error| / tolerance" in html  # the page's script draws the heat map with this caption
