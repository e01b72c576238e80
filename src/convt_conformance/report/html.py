"""Self-contained HTML report (one file, inline CSS/JS/SVG, Jinja2 with autoescaping).

Reads only a results file (and optionally a baseline results file); computes nothing
about the convolution itself. Its records are CheckRecords (a payload of record dicts is taken as
records first, :func:`with_records`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2
from markupsafe import Markup

from convt_conformance.adapters.registry import display_order
from convt_conformance.model.record import CheckRecord, as_records
from convt_conformance.model.selection import selection_line
from convt_conformance.model.status import SEVERITY, Status, worst
from convt_conformance.report.data import build_data, encode_data
from convt_conformance.report.margins import (
    margin_caption,
    margin_comparison,
    margin_histograms,
    margin_rows,
    margin_svg,
)
from convt_conformance.repro.scripts import COMMON_TAIL, report_scripts, split_common
from convt_conformance.results.files import write_atomic
from convt_conformance.results.findings import (
    api_family,
    framework_dtype_summary,
    group_findings,
    is_finding,
)
from convt_conformance.results.regression import compare_results
from convt_conformance.results.verdict import run_verdict

COLOURS = {s.value: s.colour for s in Status}
OPEN_CAP = 50  # cases with an unexpected result drawn open when the page loads
ARRAYS_CAP = 400  # records whose mismatch slices are written into the data block
_DTYPES = ("float16", "bfloat16", "float32", "float64")
UNSUPPORTED_CAP = 12  # distinct unsupported reasons listed per API in the conventions section


def column_order(column: tuple[str, str, str]) -> tuple[tuple[int, str], str, str, str]:
    """Sort key of an (adapter, api family, device) column: a framework's columns together, each
    execution path (``@path`` suffix, its own column) right after its base API."""
    adapter, family, device = column
    base, _, path = family.partition("@")
    return (display_order(adapter), base, path, device)


def with_records(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its ``results`` as CheckRecords (the same objects where they are already;
    the payload given is not modified)."""
    return {**payload, "results": as_records(payload.get("results") or [])}


def safe_link(url: str | None) -> str | None:
    """Only http(s) links written by a user (known-disagreement issues) become hrefs."""
    if not url:
        return None
    parsed = urlparse(url)
    return url if parsed.scheme in ("http", "https") and parsed.netloc else None


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return repr(v)
        return f"{v:.3g}"
    return str(v)


def _heat_colour(ratio: float | None) -> str:
    if ratio is None:
        return "#eeeeee"
    if ratio <= 1.0:  # within tolerance: white -> light green by how much of it is used
        g = int(255 - 80 * max(0.0, min(1.0, ratio)))
        return f"rgb({g},{255},{g})"
    r = min(1.0, math.log10(ratio) / 3.0)  # 1x .. 1000x the tolerance
    return f"rgb(255,{int(200 - 200 * r)},{int(200 - 200 * r)})"


def _conventions(results: list[CheckRecord]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        key = (r.adapter, api_family(r.api))  # one section per rank-generic API
        e = by.setdefault(key, {"adapter": r.adapter, "api": key[1], "version": r.framework_version,
                                "calls": {}, "unsupported": Counter(), "count": 0})
        e["count"] += 1
        nc = r.native_call
        if nc:
            sig = (nc["function"], nc["input_layout"], nc["weight_layout"], nc["output_layout"],
                   nc["weight_transform"], nc["padding_mapping"], repr(sorted(nc.get("precision", {}).items())))
            e["calls"].setdefault(sig, {"example": nc, "n": 0})["n"] += 1
        if r.status is Status.UNSUPPORTED:
            e["unsupported"][(r.message or "")[:300]] += 1
    out = []
    for key in sorted(by, key=lambda k: (display_order(k[0]), k[1])):
        e = by[key]
        e["calls"] = sorted(e["calls"].values(), key=lambda c: -c["n"])
        e["unsupported_more"] = max(0, len(e["unsupported"]) - UNSUPPORTED_CAP)
        e["unsupported_total"] = len(e["unsupported"])
        e["unsupported"] = e["unsupported"].most_common(UNSUPPORTED_CAP)
        out.append(e)
    return out


def _margin_plot(hist: dict[str, Any] | None, title: str) -> dict[str, Any] | None:
    if not hist:
        return None
    return {"svg": Markup(margin_svg(hist, title)), "caption": margin_caption(hist)}


def findings_context(payload: dict[str, Any], baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The findings-first part of the report: distinct findings (each with the reproducer
    script of its smallest check: ``repro`` / ``repro_tail`` and ``anchor`` on the finding; the
    records are not modified), the framework x dtype summary, the margin plots (and, with a baseline,
    base vs new plots per column present in both)."""
    results = as_records(payload["results"])
    findings = group_findings(results)
    # one embedded script per distinct finding: every other finding check gets its command
    scripts = report_scripts({**payload, "results": [f["smallest"] for f in findings]})
    for k, f in enumerate(findings):
        f["anchor"], f["repro"], f["repro_tail"] = None, None, None
        if f["smallest_id"] in scripts:
            f["anchor"] = f"repro-{k}"
            f["repro"], f["repro_tail"] = split_common(scripts[f["smallest_id"]])
    margins = margin_rows(margin_histograms(results))
    for row in margins["rows"]:
        row["plots"] = [_margin_plot(h, f"{row['adapter']}.{row['api']} {d}")
                        for h, d in zip(row["cells"], margins["dtypes"])]
    margin_pairs = []
    if baseline is not None:
        for m in margin_comparison(baseline["results"], results):
            title = f"{m['adapter']}.{m['api']} {m['dtype']}"
            margin_pairs.append({**m, "base_plot": _margin_plot(m["base"], f"baseline: {title}"),
                                 "new_plot": _margin_plot(m["new"], f"this run: {title}")})
    return {"findings": findings, "fw_dtype": framework_dtype_summary(results), "margins": margins,
            "margin_pairs": margin_pairs, "repro_common": COMMON_TAIL if scripts else ""}


def _data_block(results: list[CheckRecord], groups: list[tuple[str, list[dict[str, Any]]]],
                columns: list[tuple[str, str, str]], findings: list[dict[str, Any]]) -> tuple[str, int]:
    """The encoded per-check data (convt_conformance/report/data.py) and its size in KB. Mismatch
    slices are kept for the unexpected checks (the first ARRAYS_CAP) and each finding's smallest."""
    finding_ids = {id(r): r.check.id for r in results if is_finding(r)}
    arrays_for = {id(f["smallest"]) for f in findings}
    arrays_for |= {id(r) for r in results if r.status.unexpected and r.arrays}
    if len(arrays_for) > ARRAYS_CAP:
        arrays_for = set(list(arrays_for)[:ARRAYS_CAP]) | {id(f["smallest"]) for f in findings}
    anchors = {f["smallest_id"]: f["anchor"] for f in findings if f.get("anchor")}
    data = build_data(groups, columns, [s.value for s in SEVERITY], api_family, safe_link, anchors,
                      finding_ids, arrays_for)
    data.update({"severity": {s.value: s.severity for s in Status}, "colours": COLOURS,
                 "unexpected": [s.value for s in Status if s.unexpected], "open_cap": OPEN_CAP})
    encoded = encode_data(data)
    return encoded, len(encoded) // 1024


def build_context(payload: dict[str, Any], baseline: dict[str, Any] | None = None,
                  baseline_path: str | None = None) -> dict[str, Any]:
    """Everything the template shows, derived from the results file alone."""
    payload = with_records(payload)
    baseline = with_records(baseline) if baseline is not None else None
    results: list[CheckRecord] = payload["results"]
    totals = Counter(r.status for r in results)
    columns = sorted({(r.adapter, api_family(r.api), r.device) for r in results}, key=column_order)
    cases: dict[str, dict[str, Any]] = {}
    for r in results:
        c = cases.setdefault(r.case, {
            "id": r.case, "file": r.file, "tags": r.tags or [], "source": r.source,
            "description": r.description, "params": r.params, "expected_shape": r.expected_shape,
            "expected_error": r.expected_error, "results": []})
        c["results"].append(r)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in cases.values():
        c["worst"] = worst(r.status for r in c["results"])
        c["results"].sort(key=lambda r: (display_order(r.adapter), r.api, r.device,
                                         _DTYPES.index(r.dtype) if r.dtype in _DTYPES else 9))
        groups[(c["tags"] or ["untagged"])[0]].append(c)
    ordered_groups = [(g, sorted(cs, key=lambda c: c["id"])) for g, cs in sorted(groups.items())]
    comparison = None
    if baseline is not None:
        comparison = compare_results(baseline, payload)
        comparison["path"] = baseline_path or "baseline"
    verdict = run_verdict(payload)
    all_tags = sorted({t for c in cases.values() for t in c["tags"]})
    findings = findings_context(payload, baseline)
    data, data_kb = _data_block(results, ordered_groups, columns, findings["findings"])
    n_unexpected_cases = sum(1 for c in cases.values() if c["worst"].unexpected)
    return {
        "p": payload, "env": payload.get("environment", {}), "totals": totals, "severity": [s.value for s in SEVERITY], "verdict": verdict,
        "colours": COLOURS, "n_cases": len(cases), "failing": verdict.unexpected,
        "selection": selection_line(payload.get("selection") or {}, len(results)),
        "conventions": _conventions(results), "comparison": comparison,
        "frameworks": sorted({c[0] for c in columns}, key=display_order),
        "tags": all_tags, "probes": payload.get("convention_probes") or [],
        "report_data": data, "data_kb": data_kb,
        "unexpected_cap": OPEN_CAP if n_unexpected_cases > OPEN_CAP else 0,
        **findings,
    }


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["heat"] = _heat_colour
    env.globals["colour"] = lambda s: COLOURS.get(s, "#9e9e9e")
    return env


def render_report(payload: dict[str, Any], baseline: dict[str, Any] | None = None,
                  baseline_path: str | None = None) -> str:
    """The report as one HTML string."""
    return _env().get_template("report.html.j2").render(**build_context(payload, baseline, baseline_path))


def write_report(path: str | Path, payload: dict[str, Any], baseline: dict[str, Any] | None = None,
                 baseline_path: str | None = None) -> None:
    """Render the report and write it to ``path`` atomically (parent directories created)."""
    write_atomic(path, render_report(payload, baseline, baseline_path))
