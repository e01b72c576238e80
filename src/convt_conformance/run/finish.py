"""The controller's outputs of a run: the in-progress marker at the start (stale results and
report never look current), the results file and report at the end, and the compact summary
whose last line is the verdict."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from convt_conformance.adapters.registry import AdapterLoadError, get_adapter, registry_problems
from convt_conformance.model.env_facts import holds
from convt_conformance.model.record import CheckRecord, as_records
from convt_conformance.model.selection import selection_line
from convt_conformance.results.verdict import run_verdict
from convt_conformance.run.collector import ResultsCollector, stream_path
from convt_conformance.run.state import RunState

SUMMARY_FINDINGS = 12  # unexpected results listed in the terminal summary


def _command(config: pytest.Config) -> str:
    return config.getoption("conformance_command") or " ".join(sys.argv)


def start_outputs(config: pytest.Config, st: RunState, collector: ResultsCollector) -> None:
    """Replace the results file by an in-progress one, remove a stale report, open the stream."""
    from convt_conformance.results.store import SCHEMA, write_results

    path = config.getoption("results")
    if not path:
        return
    write_results(path, {"schema": SCHEMA, "complete": False, "in_progress": True, "started": st.started,
                         "command": _command(config), "stream": stream_path(path).name,
                         "environment": {}, "problems": [], "results": []})
    report = config.getoption("report")
    if report:
        Path(report).unlink(missing_ok=True)
    collector.open_stream(path)


def _frameworks_versions(names: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    versions: dict[str, str | None] = {}
    unavailable: dict[str, str] = {}
    for n in names:
        try:
            a = get_adapter(n)
        except AdapterLoadError as exc:
            versions[n], unavailable[n] = None, str(exc)
            continue
        v = a.version() if a.installed() else None
        versions[n] = v
        if v is None:
            unavailable[n] = f"{n} is not installed"
    return versions, unavailable


def build_payload(session: pytest.Session, exitstatus: int, st: RunState,
                  collector: ResultsCollector) -> dict[str, Any]:
    """The results payload (schema ``conformance-results``) of the run so far; its ``results`` are
    the CheckRecords, ordered by check (they become JSON in the results file)."""
    from convt_conformance.results.store import SCHEMA, environment

    config = session.config
    results = sorted(collector.records.values(), key=lambda r: r.check)
    named = [f for f in config.getoption("frameworks").split(",") if f]  # --frameworks, as given
    requested = named or st.frameworks
    versions, unavailable = _frameworks_versions(sorted(set(requested) | set(st.frameworks)))
    unavailable.update(st.unavailable)
    ran = {r.adapter for r in results}
    for name in st.frameworks:
        # Installed but no check ran (under xdist the workers' import failures stay in the
        # workers): try the import here so a broken install is reported, not silent.
        if name not in ran and name not in unavailable:
            why = get_adapter(name).unavailable_reason()
            if why:
                unavailable[name] = why
    devices = sorted({r.device for r in results if r.device in ("cpu", "gpu")})
    missing = collector.missing()
    # a usage error stops the run before or during collection: what it wrote is not the run asked for
    interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR,
                                 pytest.ExitCode.USAGE_ERROR) or bool(session.shouldstop)
    unmatched = _unmatched_known(st, results)
    return {
        # no check collected from the case files given is never a complete run
        "schema": SCHEMA, "complete": not interrupted and not missing and bool(collector.expected),
        "missing_checks": len(missing) if missing else 0,
        # node ids of collected checks without a record (a worker lost with what it held):
        # `conformance run` runs these once more (convt_conformance/cli/run.py `_rerun_missing`)
        "missing_ids": [] if interrupted or missing == ["<collection did not finish>"] else missing,
        "started": st.started, "finished": datetime.now(UTC).isoformat(),
        "duration_s": round(time.time() - st.t0, 3),
        "command": _command(config),
        "environment": environment(versions, st.precision, devices or [config.getoption("device")],
                                   unavailable, framework_devices=st.framework_devices,
                                   framework_settings=st.configured, adapter_problems=registry_problems()),
        # requested_frameworks: those named in --frameworks ([]: every installed one); one of them
        # in environment.unavailable makes the verdict not clean (results/verdict.py)
        "selection": {"frameworks": st.frameworks, "requested_frameworks": named, "device": config.getoption("device"),
                      "tags": config.getoption("tags"), "dtypes": config.getoption("dtypes"),
                      **st.selection},
        "problems": sorted(set(collector.problems.values()) | set(st.known_problems)),
        "warnings": unmatched,
        "convention_probes": collector.probes,
        "results": results,
    }


def _unmatched_known(st: RunState, results: list[CheckRecord]) -> list[str]:
    """Known-disagreement entries that matched no check of a run that ran every check of a
    framework they name (as array-api-tests warns for unmatched xfails): a renamed case or a
    fixed bug leaves an entry that no longer means anything."""
    if st.profile.name != "full":
        return []  # a profile runs a subset: an entry may match only checks it left out
    used = {r.known.get("entry") for r in results if r.known}
    ran = {r.adapter for r in results}
    return [f"known disagreement {i} not matched by any check: case {e.case!r}, adapter {e.adapter!r}, "
            f"api {e.api!r}, dtype {e.dtype!r}: {e.reason[:80]}" for i, e in enumerate(st.known)
            if i not in used and (e.adapter == "*" or e.adapter in ran) and _holds_here(e.when)]


def _holds_here(when: tuple[str, ...]) -> bool:
    """Whether an entry's `when:` is known to hold in this controller: CPU flags and `onednn.*`
    facts are read here, framework facts only in the processes that set the frameworks up (such
    an entry may be another machine's, and is not warned about)."""
    return not when or (all("." not in t or t.lstrip("!").startswith("onednn.") for t in when) and holds(when))


def finish_outputs(session: pytest.Session, exitstatus: int, st: RunState, collector: ResultsCollector) -> None:
    """Write the results file and the report, then print the compact summary."""
    from convt_conformance.results.store import write_results

    config = session.config
    payload = build_payload(session, exitstatus, st, collector)
    path = config.getoption("results")
    if path:
        write_results(path, payload)
        collector.close_stream(remove=True)
    report = config.getoption("report")
    if report:
        from convt_conformance.report.html import write_report

        write_report(report, payload)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        for line in summary_lines(payload, path, report):
            tr.write_line(line)


def summary_lines(payload: dict[str, Any], path: str | None, report: str | None) -> list[str]:
    """The run's own compact summary: counts, the first findings, where the outputs are."""
    results = as_records(payload["results"])
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    v = run_verdict({**payload, "results": results})
    sel = payload.get("selection") or {}
    lines = ["", "=" * 30 + " conformance " + "=" * 30,
             selection_line(sel, len(results)) + " | " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))]
    for r in v.unexpected[:SUMMARY_FINDINGS]:
        lines.append(f"  {r.status}{f'/{r.failure_kind}' if r.failure_kind else ''}: {r.check.id}: "
                     f"{(r.message or '')[:140]}")
    if len(v.unexpected) > SUMMARY_FINDINGS:
        lines.append(f"  ... {len(v.unexpected) - SUMMARY_FINDINGS} more unexpected result(s) in the results file")
    for name, why in sorted(v.unavailable.items()):
        lines.append(f"  requested framework cannot run: {name}: {why[:300]}")
    for name, why in sorted(v.skipped.items()):
        lines.append(f"  skipped (not available here): {name}: {why[:300]}")
    for p in payload["problems"][:5]:
        lines.append(f"  problem: {p}")
    for w in payload.get("warnings", [])[:5]:
        lines.append(f"  warning: {w}")
    if payload.get("missing_checks"):
        lines.append(f"  {payload['missing_checks']} collected check(s) have no record")
    if path:
        lines.append(f"results: {path}")
    if report:
        lines.append(f"report: {report}")
    return lines
