"""CI outputs of a results payload: JUnit XML (one testcase per check) and a short Markdown
summary (verdict, counts, findings) for a CI job summary or a pull-request comment.

Both read only the payload (README "Results file"); statuses are interpreted through
:class:`convt_conformance.model.status.Status` and the verdict through :func:`convt_conformance.results.verdict.run_verdict`.
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from convt_conformance.adapters.registry import display_order
from convt_conformance.model.record import CheckRecord, as_records
from convt_conformance.model.selection import selection_line
from convt_conformance.model.status import SEVERITY, Status
from convt_conformance.results.files import write_atomic
from convt_conformance.results.findings import group_findings
from convt_conformance.results.verdict import run_verdict

_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ERRORS = (Status.ERROR, Status.CRASH)  # JUnit <error> (the check broke) rather than <failure>


def _x(text: Any) -> str:
    """Text that XML 1.0 can hold (control characters replaced); ElementTree escapes the rest."""
    return _XML_BAD.sub("?", "" if text is None else str(text))


def _testcase(rec: CheckRecord) -> ET.Element:
    st = rec.status
    tc = ET.Element("testcase", classname=_x(f"{rec.adapter}.{rec.api}"), name=_x(rec.check.id),
                    time=f"{float(rec.seconds or 0.0):.4f}")
    props = ET.SubElement(tc, "properties")
    for key, value in (("framework", rec.adapter), ("api", rec.api), ("dtype", rec.dtype),
                       ("device", rec.device), ("status", st),
                       ("kind", rec.failure_kind or rec.underlying_status or ""),
                       ("framework_version", rec.framework_version or ""), ("case", rec.case)):
        ET.SubElement(props, "property", name=key, value=_x(value))
    message = _x((rec.message or "")[:2000])
    kind = rec.kind
    if st.unexpected:
        el = ET.SubElement(tc, "error" if st in _ERRORS else "failure", message=message[:500], type=_x(kind))
        el.text = message
    elif not st.ran:
        ET.SubElement(tc, "skipped", message=_x(f"unsupported: {message[:500]}"))
    elif rec.underlying_status is not None and rec.underlying_status.failing:
        reason = (rec.known or {}).get("reason") or ""
        ET.SubElement(tc, "skipped", type="xfail", message=_x(f"known disagreement ({kind}): {reason[:500]}"))
    return tc


def junit_tree(payload: dict[str, Any]) -> ET.ElementTree:
    """``<testsuites>`` with one ``<testsuite>`` per framework and one ``<testcase>`` per check:
    unexpected statuses are ``<failure>`` (``<error>`` for error and crash), unsupported and
    xfail are ``<skipped>``, the rest pass."""
    by: dict[str, list[CheckRecord]] = defaultdict(list)
    for r in as_records(payload.get("results") or []):
        by[r.adapter].append(r)
    root = ET.Element("testsuites", name="conformance")
    totals: Counter[str] = Counter()
    for adapter in sorted(by, key=display_order):
        cases = [_testcase(r) for r in by[adapter]]
        n: Counter[str] = Counter()
        for tc in cases:
            for tag in ("failure", "error", "skipped"):
                n[tag] += tc.find(tag) is not None
        suite = ET.SubElement(root, "testsuite", name=_x(adapter), tests=str(len(cases)),
                              failures=str(n["failure"]), errors=str(n["error"]), skipped=str(n["skipped"]),
                              time=f"{sum(float(r.seconds or 0.0) for r in by[adapter]):.3f}")
        suite.extend(cases)
        totals.update(n)
        totals["tests"] += len(cases)
    for key, tag in (("tests", "tests"), ("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        root.set(key, str(totals[tag]))
    return ET.ElementTree(root)


def write_junit_xml(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write :func:`junit_tree` of ``payload`` to ``path`` atomically (UTF-8, parent directories created)."""
    tree = junit_tree(payload)
    ET.indent(tree)
    buf = io.BytesIO()
    tree.write(buf, encoding="utf-8", xml_declaration=True)
    write_atomic(path, buf.getvalue())


def _md(text: Any, limit: int = 240) -> str:
    """One line of Markdown-safe text (HTML and table pipes escaped, newlines folded)."""
    s = " ".join(str(text or "").split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def markdown_summary(payload: dict[str, Any], report_path: str | None = None,
                     results_path: str | None = None, max_findings: int = 12) -> str:
    """The summary: verdict, checks per framework x status, the first ``max_findings``
    findings with their reasons, where the report is; at most ~60 lines."""
    results = as_records(payload.get("results") or [])
    verdict = run_verdict({**payload, "results": results})
    lines = [f"## Transposed-convolution conformance: {'CLEAN' if verdict.clean else 'NOT CLEAN'}", "",
             f"**{_md(verdict.line(), 400)}**", "",
             _md(selection_line(payload.get("selection") or {}, len(results)), 400), ""]
    frameworks = payload.get("environment", {}).get("frameworks") or {}
    if frameworks:
        lines += ["Frameworks: " + ", ".join(f"{_md(k)} {_md(v or 'not installed')}" for k, v in frameworks.items()), ""]
    counts: dict[str, Counter[Status]] = defaultdict(Counter)
    for r in results:
        counts[r.adapter][r.status] += 1
    present = [s for s in SEVERITY if any(c[s] for c in counts.values())]
    if counts:
        lines += ["| framework | " + " | ".join(present) + " | total |",
                  "|---|" + "---:|" * (len(present) + 1)]
        for a in sorted(counts, key=display_order):
            lines.append(f"| {_md(a)} | " + " | ".join(str(counts[a][s] or "") for s in present)
                         + f" | {sum(counts[a].values())} |")
        lines.append("")
    findings = group_findings(results)
    n_unexp = sum(f["unexpected"] for f in findings)
    lines.append(f"### Findings: {len(findings)} distinct ({n_unexp} unexpected, {len(findings) - n_unexp} known)")
    lines.append("")
    for i, f in enumerate(findings[:max_findings], 1):
        kind = f["status"] + (f"/{f['kind']}" if f["kind"] != f["status"] else "")
        why = f["reason"] or f["smallest"].message or ""
        lines.append(f"{i}. **{_md(f['adapter'])}.{_md(f['api'])}** {_code(kind)}: {f['count']} check(s) in "
                     f"{f['cases']} case(s), {_md(', '.join(f['dtypes']))} on {_md(', '.join(f['devices']))}; "
                     f"smallest {_code(f['smallest_id'])}. {_md(why, 200)}")
    if len(findings) > max_findings:
        lines.append(f"\n… and {len(findings) - max_findings} more finding(s) in the HTML report.")
    if not findings:
        lines.append("None.")
    lines.append("")
    if findings:
        res = f" --results {results_path}" if results_path else ""
        lines.append(f"Reproduce one: {_code(f'conformance repro <check id>{res}')} prints a standalone script.")
    if report_path:
        lines.append(f"HTML report: {_code(report_path)} (findings, margin plots, reproducers).")
    return "\n".join(lines) + "\n"


def write_markdown_summary(path: str | os.PathLike[str], payload: dict[str, Any], report_path: str | None = None,
                           results_path: str | None = None) -> None:
    """Write :func:`markdown_summary` to ``path``; appended when ``path`` is the job summary
    file GitHub Actions names in ``$GITHUB_STEP_SUMMARY`` (other steps write there too). Written
    atomically, the earlier steps' text included."""
    path = Path(path)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    before = ""
    if step and Path(step).resolve() == path.resolve() and path.is_file():
        before = path.read_text(encoding="utf-8", errors="replace")
    write_atomic(path, before + markdown_summary(payload, report_path, results_path))
