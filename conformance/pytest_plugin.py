"""pytest plugin that turns case files into checks: ``pytest -p conformance.pytest_plugin cases/``.

Every YAML case file is a collector; every (case, adapter, api, device, dtype) is an item
named ``<case id>[<adapter>.<api>-<device>-<dtype>]`` with markers per framework, device
and dtype. Each item stores its results record in ``item.user_properties``; the controller
(xdist's, or the single process) collects records from the reports it receives and writes
the results file at the end. Nothing is kept in worker globals. A worker that dies
(segfault) is recorded as ``crash`` for the check it was running; xdist restarts it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.registry import AdapterLoadError, adapter_names, entries, get_adapter, registry_problems
from conformance.cases import load_file
from conformance.check import apply_known, run_check
from conformance.check_id import format_check_id, parse_check_id
from conformance.known import load_known
from conformance.status import Status
from conformance.watchdog import Watchdog, timed_out

RECORD_KEY = "conformance_record"
WORKER_ENV_KEY = "conformance_worker_environment"
WATCHDOG_DIR_KEY = "conformance_watchdog_dir"
DEFAULT_CHECK_TIMEOUT_S = 300.0  # the slowest committed check takes a few seconds
_records_key = pytest.StashKey["ResultsCollector"]()
_state_key = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("conformance")
    g.addoption("--frameworks", default="",
                help="comma-separated frameworks to run (default: every registered one; see `conformance devices`)")
    g.addoption("--device", default="cpu", choices=("cpu", "gpu", "all"))
    g.addoption("--precision", default="strict", choices=("strict", "default"))
    g.addoption("--tags", default="", help="comma-separated case tags to select")
    g.addoption("--dtypes", default="", help="comma-separated dtypes to restrict to")
    g.addoption("--results", default="reports/results.json", help="results file to write")
    g.addoption("--report", default="", help="also write the HTML report here")
    g.addoption("--known", default="known_disagreements.yaml", help="known-disagreements file")
    g.addoption("--no-probes", action="store_true", help="skip the convention probes")
    g.addoption("--check-timeout", type=float, default=DEFAULT_CHECK_TIMEOUT_S,
                help="seconds one check may take under xdist before its worker is stopped and the "
                     "check recorded as crash/timeout (0: no limit)")
    g.addoption("--conformance-command", default="", help=argparse.SUPPRESS)


def pytest_configure(config: pytest.Config) -> None:
    for name in entries():
        config.addinivalue_line("markers", f"{name}: checks of the {name} adapter")
    config.addinivalue_line("markers", "gpu: checks that run on a GPU")
    config.addinivalue_line("markers", "cpu: checks that run on the CPU")
    for dt in ("float16", "bfloat16", "float32", "float64"):
        config.addinivalue_line("markers", f"{dt}: checks in {dt}")
    collector = ResultsCollector(config)
    config.stash[_records_key] = collector
    config.pluginmanager.register(collector, "conformance-results-collector")
    frameworks = selected_frameworks(config.getoption("frameworks"))
    known, known_problems = load_known(config.getoption("known"))
    config.stash[_state_key] = {
        "frameworks": frameworks, "adapters": {}, "configured": {}, "known": known,
        "known_problems": known_problems, "started": datetime.now(UTC).isoformat(),
        "t0": time.time(), "problems": [], "seen_ids": {}, "framework_devices": {},
        "watchdog_dir": None, "watchdog": None,
    }
    if not hasattr(config, "workerinput") and config.getoption("check_timeout") > 0:
        # controller: a directory for the workers' watchdog files (used under xdist only)
        config.stash[_state_key]["watchdog_dir"] = tempfile.mkdtemp(prefix="conformance-watchdog-")


def selected_frameworks(option: str) -> list[str]:
    """The frameworks a ``--frameworks`` value names (empty: every loadable registered one);
    UsageError for a name the registry does not know."""
    frameworks = [f for f in option.split(",") if f] or list(adapter_names())
    unknown = [f for f in frameworks if f not in entries()]
    if unknown:
        raise pytest.UsageError(f"unknown framework(s) {unknown}; known: {', '.join(entries())}")
    return frameworks


def _watchdog(config: pytest.Config) -> Watchdog | None:
    """This worker's watchdog (None in the controller, with -n 0, or with --check-timeout 0)."""
    st = _state(config)
    if st["watchdog"] is None and hasattr(config, "workerinput"):
        directory = config.workerinput.get(WATCHDOG_DIR_KEY)
        if directory and config.getoption("check_timeout") > 0:
            st["watchdog"] = Watchdog(directory, config.workerinput.get("workerid", "gw"),
                                      config.getoption("check_timeout"))
    return st["watchdog"]


@contextlib.contextmanager
def _time_limit(item: pytest.Item):
    wd = _watchdog(item.config)
    if wd is None:
        yield
    else:
        with wd.guard(item.nodeid):
            yield


def _state(config: pytest.Config) -> dict:
    return config.stash[_state_key]


def _adapter(config: pytest.Config, name: str):
    """This process's adapter instance (created and configured once per process)."""
    st = _state(config)
    if name not in st["adapters"]:
        st["unavailable"] = st.get("unavailable", {})
        try:
            a = get_adapter(name)
        except AdapterLoadError as exc:  # a broken plugin: reported, the others still run
            st["adapters"][name] = None
            st["unavailable"][name] = str(exc)
            return None
        st["adapters"][name] = a
        why = a.unavailable_reason() if a.installed() else f"{name} is not installed ({a.module or name})"
        if why:
            st["unavailable"][name] = why
        else:
            st["configured"][name] = a.configure(config.getoption("precision"))
    return st["adapters"][name]


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    if file_path.suffix in (".yaml", ".yml") and not file_path.name.startswith("known_disagreements"):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self):
        config = self.config
        st = _state(config)
        if not config.getoption("no_probes") and not st.get("probe_collected"):
            st["probe_collected"] = True  # one probe item per session, run by some worker
            yield ProbeItem.from_parent(self, name="convention-probes")
        display = str(self.path.relative_to(config.rootpath)) if self.path.is_relative_to(config.rootpath) else str(self.path)
        result = load_file(self.path, display=display)
        for p in result.problems:
            yield ProblemItem.from_parent(self, name=f"invalid-case-file[{len(st['problems'])}]", problem=str(p))
            st["problems"].append(str(p))
        tags = {t for t in config.getoption("tags").split(",") if t}
        dtypes = {t for t in config.getoption("dtypes").split(",") if t}
        want_dev = config.getoption("device")
        for case in result.cases:
            first = st["seen_ids"].setdefault(case.id, display)
            if first != display:
                msg = f"{display}: case {case.id}: id: duplicate case id, first defined in {first}"
                st["problems"].append(msg)
                yield ProblemItem.from_parent(self, name=f"duplicate-id[{case.id}]", problem=msg)
                continue
            if tags and not tags & set(case.tags):
                continue
            for name in st["frameworks"]:
                adapter = _adapter(config, name)
                if adapter is None or name in st.get("unavailable", {}):
                    continue  # reported as unavailable in the environment
                devices = st["framework_devices"].get(name)
                if devices is None:
                    devices = st["framework_devices"][name] = adapter.devices()
                devices = [d for d in devices if want_dev == "all" or d == want_dev]
                for api in adapter.apis:
                    if not adapter.applies(case, api):
                        continue
                    label = adapter.api_label(api, case.rank)
                    for device in devices:
                        for dtype in case.dtypes:
                            if dtypes and dtype not in dtypes:
                                continue
                            item = CaseItem.from_parent(
                                self, name=format_check_id(case.id, name, label, device, dtype), case=case,
                                adapter_name=name, api=api, device=device, dtype=dtype)
                            for m in (name, device, dtype):
                                item.add_marker(m)
                            yield item


class CheckFailed(Exception):
    pass


class CaseItem(pytest.Item):
    def __init__(self, *, case, adapter_name, api, device, dtype, **kw):
        super().__init__(**kw)
        self.case, self.adapter_name, self.api, self.device, self.dtype = case, adapter_name, api, device, dtype

    def runtest(self):
        st = _state(self.config)
        adapter = _adapter(self.config, self.adapter_name)
        with _time_limit(self):
            rec = run_check(self.case, adapter, self.api, self.device, self.dtype,
                            self.config.getoption("precision"), st["known"])
        rec["nodeid"] = self.nodeid
        self.user_properties.append((RECORD_KEY, json.dumps(rec, default=str)))
        status = Status(rec["status"])
        if status is Status.UNSUPPORTED:
            pytest.skip(f"unsupported: {rec['message']}")
        if status is Status.XFAIL:
            pytest.xfail(f"known disagreement ({rec.get('underlying_status')}): {rec['known']['reason']}")
        if status.unexpected:
            raise CheckFailed(f"{status}{'/' + rec['failure_kind'] if rec.get('failure_kind') else ''}: {rec['message']}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.case.file}: case {self.case.id}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.case.id} [{self.adapter_name}.{self.api} {self.device} {self.dtype}]"


class ProbeItem(pytest.Item):
    """The convention probes (conformance.probes), run in a worker like any check."""

    def runtest(self):
        with _time_limit(self):
            rows = _probes(_state(self.config)["frameworks"])
        self.user_properties.append(("conformance_probes", json.dumps(rows)))
        bad = [r for r in rows if not r["agrees"]]
        if bad:
            raise CheckFailed("convention probe disagrees with the adapter's declaration: "
                              + "; ".join(f"{r['api']}: discovered {r['discovered']}, declared {r['declared']}"
                                          for r in bad))

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, self.name


class ProblemItem(pytest.Item):
    """A case-file problem, surfaced as a failing item so it is never silent."""

    def __init__(self, *, problem, **kw):
        super().__init__(**kw)
        self.problem = problem

    def runtest(self):
        self.user_properties.append(("conformance_problem", self.problem))
        raise CheckFailed(self.problem)

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, self.name


def _crash_record(report: pytest.TestReport, config: pytest.Config) -> dict:
    key = parse_check_id(report.nodeid)
    text = str(report.longrepr)[-1500:] if report.longrepr else ""
    crashed = "crashed" in text or "worker" in text and "died" in text
    base = key._asdict() if key else {"case": report.nodeid, "adapter": "?", "api": "?", "device": "?", "dtype": "?"}
    rec = {**base, "status": "crash" if crashed else "error", "nodeid": report.nodeid,
           "precision": config.getoption("precision"),
           "message": ("the process running this check died (" + text.strip().splitlines()[-1][:300] + ")")
           if crashed else f"unexpected failure outside the check: {text[-600:]}",
           "expected_shape": None, "shape": None, "tags": [], "native_call": None, "known": None}
    where = timed_out(_state(config)["watchdog_dir"], report.nodeid) if crashed else None
    if where is not None:
        rec.update(failure_kind="timeout",
                   message=f"no result within --check-timeout {config.getoption('check_timeout'):g} s: "
                           f"the worker was stopped; it was in {where}")
    return rec


class ResultsCollector:
    """Registered on every process; only the controller's copy receives all reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: dict[str, dict] = {}
        self.problems: dict[str, str] = {}
        self.probes: list[dict] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == RECORD_KEY and report.nodeid not in self.records:
                self.records[report.nodeid] = json.loads(value)
            elif key == "conformance_problem":
                self.problems[report.nodeid] = value
            elif key == "conformance_probes" and not self.probes:
                self.probes = json.loads(value)
        if report.failed and report.nodeid not in self.records and parse_check_id(report.nodeid):
            rec = _crash_record(report, self.config)
            apply_known(rec, _state(self.config)["known"])
            self.records[report.nodeid] = rec

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """xdist controller: tell each worker where its watchdog file goes."""
        node.workerinput[WATCHDOG_DIR_KEY] = _state(self.config)["watchdog_dir"]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """xdist controller: a worker's view of the frameworks (collection, and so the adapters'
        ``devices()`` and ``configure()``, runs in the workers only) joins the controller's."""
        st = _state(self.config)
        seen = (getattr(node, "workeroutput", None) or {}).get(WORKER_ENV_KEY)
        if seen:
            env = json.loads(seen)
            for name, devices in env["framework_devices"].items():
                st["framework_devices"].setdefault(name, devices)
            for name, settings in env["configured"].items():
                st["configured"].setdefault(name, settings)


def _frameworks_versions(names: list[str]) -> tuple[dict, dict]:
    versions, unavailable = {}, {}
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


def _probes(frameworks: list[str]) -> list[dict]:
    from conformance.probes import discover_conventions

    try:
        return discover_conventions(frameworks)
    except Exception as exc:  # a probe must never lose the run's results
        return [{"adapter": "?", "api": "probes", "discovered": f"probe error: {exc}",
                 "declared": "", "agrees": False, "naive_mapping": ""}]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):  # xdist worker: the controller writes the file
        st = _state(config)
        config.workeroutput[WORKER_ENV_KEY] = json.dumps(
            {"framework_devices": st["framework_devices"], "configured": st["configured"]}, default=str)
        return
    from conformance.results import SCHEMA, environment, write_results

    st = _state(config)
    collector = config.stash[_records_key]
    if st["watchdog_dir"]:
        shutil.rmtree(st["watchdog_dir"], ignore_errors=True)
    records, problems_map = collector.records, collector.problems
    results = sorted(records.values(), key=lambda r: (r["case"], r["adapter"], r["api"], r["device"], r["dtype"]))
    versions, unavailable = _frameworks_versions(st["frameworks"])
    unavailable.update(st.get("unavailable", {}))
    ran = {r["adapter"] for r in results}
    for name in st["frameworks"]:
        # Installed but no check ran (under xdist the workers' import failures stay in the
        # workers): try the import here so a broken install is reported, not silent.
        if name not in ran and name not in unavailable:
            why = get_adapter(name).unavailable_reason()
            if why:
                unavailable[name] = why
    plugin_problems = registry_problems()
    devices = sorted({r["device"] for r in results if r.get("device") in ("cpu", "gpu")})
    interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR) or bool(session.shouldstop)
    payload = {
        "schema": SCHEMA, "complete": not interrupted,
        "started": st["started"], "finished": datetime.now(UTC).isoformat(),
        "duration_s": round(time.time() - st["t0"], 3),
        "command": config.getoption("conformance_command") or " ".join(sys.argv),
        "environment": environment(versions, config.getoption("precision"), devices or [config.getoption("device")],
                                   unavailable, framework_devices=st["framework_devices"],
                                   framework_settings=st["configured"], adapter_problems=plugin_problems),
        "selection": {"frameworks": st["frameworks"], "device": config.getoption("device"),
                      "tags": config.getoption("tags"), "dtypes": config.getoption("dtypes")},
        "problems": sorted(set(problems_map.values()) | set(st["known_problems"])),
        "convention_probes": collector.probes,
        "results": results,
    }
    path = config.getoption("results")
    if path:
        write_results(path, payload)
    report = config.getoption("report")
    if report:
        from conformance.report import write_report

        write_report(report, payload)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        counts: dict[str, int] = {}
        for r in results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        tr.write_sep("=", "conformance")
        tr.write_line("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if path:
            tr.write_line(f"results: {path}")
        if report:
            tr.write_line(f"report: {report}")
