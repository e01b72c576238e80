"""``conformance run``: the pytest command line behind it, the preflight, the rerun of checks lost
with a crashed worker, ``--require-gpu`` and the verdict."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import threading
from pathlib import Path

from convt_conformance.cli.common import (
    DEFAULT_KNOWN,
    EXIT_USAGE,
    case_paths,
    check_paths,
    refuse_usage,
    requested_frameworks,
    write_ci_outputs,
)
from convt_conformance.cli.paths import lock_output
from convt_conformance.library import LIBRARY_DIR

PLUGIN_MODULE = "convt_conformance.run.plugin"  # the pytest plugin behind `conformance run`


def build_pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest command line behind ``conformance run``. The case files are found by
    :func:`convt_conformance.loading.cases.discover` (the walker of ``validate`` too), so both
    commands read the same files (pytest's own walk follows symlink loops), and handed to pytest
    as a list in a file (``--case-list``, also pytest's one argument): a file name is never parsed
    by pytest as a node id (``a::b.yaml``, ``x[1].yaml``) or an option (``-dash.yaml``)."""
    from convt_conformance.loading.cases import discover

    given = case_paths(args)
    files = [str(f) for f in discover(given)] or list(given)
    # check ids name a file relative to pytest's rootdir: the library's own files as ``cases/...``
    # wherever the package is installed, anyone else's relative to the working directory
    library = all(Path(f).resolve().is_relative_to(LIBRARY_DIR) for f in files)
    listed = _case_list(args, files)
    pa = [listed, "--case-list", listed, "-p", PLUGIN_MODULE, "-p", "no:cacheprovider",
          "-o", "addopts=", "-o", "testpaths=", "--rootdir", str(LIBRARY_DIR) if library else os.getcwd(),
          "--frameworks", args.frameworks, "--device", args.device, "--precision", args.precision,
          "--results", args.results, "--known", args.known if args.known is not None else DEFAULT_KNOWN,
          "--conformance-command", "conformance " + " ".join(shlex.quote(a) for a in args.argv)]
    if args.tags:
        pa += ["--tags", args.tags]
    if args.dtypes:
        pa += ["--dtypes", args.dtypes]
    if args.report:
        pa += ["--report", args.report]
    if args.no_probes:
        pa.append("--no-probes")
    pa += ["--profile", args.profile]
    if args.profiles_file:
        pa += ["--profiles-file", args.profiles_file]
    if args.shard:
        pa += ["--shard", args.shard]
    pa += ["--check-timeout", str(args.check_timeout), "--setup-timeout", str(args.setup_timeout)]
    if getattr(args, "preflight_json", ""):
        pa += ["--preflight-json", args.preflight_json]
    if getattr(args, "only_checks", ""):
        pa += ["--only-checks", args.only_checks]
    if args.n != "0":
        # each known crash costs one restart; a framework that crashes while setting up is caught
        # by the preflight, so the bound only stops a run whose checks crash by the hundred
        pa += ["-n", args.n, "--max-worker-restart", str(MAX_WORKER_RESTARTS)]
    extra = list(args.pytest_args or [])
    # pytest's per-failure sections cost time quadratic in the failures and repeat what the
    # results hold: off unless asked for (`-- --tb=short`); the run prints its own summary
    tb = [] if any(a.startswith("--tb") for a in extra) else ["--tb=no"]
    # no assertion rewriting (the engine raises its own errors; rewriting the imported modules
    # cost ~5 s a process), no hypothesis plugin (it imports hypothesis at the end: ~4 s) and no
    # log capture (its handler swap, three times a check, cost ~5 ms a check; the checks log nothing
    # the results need, and the frameworks' log lines are captured with their stderr; asking for
    # pytest's log options after `--` keeps it)
    logs = [] if any(a.startswith(("--log", "-o log", "--show-capture")) for a in extra) else ["-p", "no:logging"]
    pa += ["-q", "-rN", "--no-header", "-p", "no:faulthandler", "-p", "no:hypothesispytest", *logs,
           "--assert=plain",
           *tb] + extra
    return pa


MAX_WORKER_RESTARTS = 200


def _case_list(args: argparse.Namespace, files: list[str]) -> str:
    """Write ``files`` as the run's case list, in a temporary folder of the run
    (``args.case_list_dir``, made at the first call; :func:`cmd_run` removes it): its path."""
    import tempfile

    from convt_conformance.loading.cases import write_case_list

    if not getattr(args, "case_list_dir", ""):
        args.case_list_dir = tempfile.mkdtemp(prefix="conformance-cases-")
    path = Path(args.case_list_dir) / "case-files.json"
    write_case_list(path, files)
    return str(path)


def _gpu_capable(name: str) -> bool:
    from convt_conformance.adapters.registry import AdapterLoadError, adapter_class

    try:
        return adapter_class(name).gpu_capable
    except AdapterLoadError:
        return True  # a broken plugin cannot have run on a GPU: it is reported as missing


def frameworks_without_gpu_checks(data: dict, frameworks: list[str]) -> list[str]:
    """The requested GPU-capable frameworks (the adapter's ``gpu_capable``) with no check on
    device ``gpu`` in ``data``."""
    on_gpu = {r["adapter"] for r in data["results"] if r["device"] == "gpu"}
    return [f for f in frameworks if _gpu_capable(f) and f not in on_gpu]


def framework_environment(frameworks: list[str]) -> dict[str, str]:
    """The environment variables the adapters of ``frameworks`` ask for (their
    ``process_environment``, read without importing a framework; the first framework asking for a
    variable decides it); an unknown or broken adapter asks for none (the run reports it)."""
    from convt_conformance.adapters.registry import AdapterLoadError, adapter_class

    out: dict[str, str] = {}
    for name in frameworks:
        try:
            wanted = adapter_class(name).process_environment()
        except AdapterLoadError:
            continue
        for key, value in wanted.items():
            out.setdefault(key, value)
    return out


def set_framework_environment(frameworks: list[str]) -> None:
    """Set :func:`framework_environment` in this process, each variable only where it is unset
    (the run's processes inherit it)."""
    for key, value in framework_environment(frameworks).items():
        os.environ.setdefault(key, value)


def run_preflight(args: argparse.Namespace) -> list[str]:
    """Everything ``run`` checks before starting: paths (:func:`check_paths`), then the results lock."""
    errors = check_paths("run", args)
    if not errors:
        why = lock_output(args.results)
        if why:
            errors.append(f"--results {why}")
    return errors


def worker_threads(n: str, cpus: int) -> int | None:
    """OpenMP threads for each of ``n`` workers (``-n``: a count or ``auto``/``logical``, one a
    CPU) on ``cpus`` CPUs, or None in-process or with one worker. Workers running OpenMP kernels
    (torch on the CPU) with a thread a core each oversubscribe the machine, and OpenMP's idle
    threads spin: torch's column alone took 45 s with two workers, 39 s with one thread each (the
    adapter records its thread count in ``framework_settings``). ``OMP_NUM_THREADS`` set by the
    user is kept."""
    workers = cpus if n in ("auto", "logical") else int(n)
    return None if workers < 2 else max(1, cpus // workers)


def passthrough_problems(extra: list[str]) -> list[str]:
    """Why pytest arguments given after ``--`` cannot be passed on: an option of the run's plugin
    (``--results``, ``--frameworks``, ...: ``conformance run`` sets each from its own options, and
    one given again after ``--`` would win, so the run would write, or select, other than what it
    then reads its verdict from), or one unloading the plugin (``-p no:...``)."""
    from convt_conformance.run.plugin_options import plugin_option_names

    own = set(plugin_option_names())
    out: list[str] = []
    for i, arg in enumerate(extra):
        name = arg.split("=", 1)[0]
        if name in own:
            out.append(f"pytest argument {arg!r} after --: {name} configures the run's plugin, which "
                       "`conformance run` sets from its own options (see `conformance run --help`)")
        given = f"-p {extra[i + 1]}" if arg == "-p" and i + 1 < len(extra) else arg
        if given.startswith("-p") and given[2:].lstrip(" =") == f"no:{PLUGIN_MODULE}":
            out.append(f"pytest argument {given!r} after --: it unloads the run's plugin, which writes the "
                       "results the verdict is read from")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    """``conformance run``: refuse bad arguments and paths, then the run (:func:`_run`) with the
    preflight beside it; the exit code is the verdict's, read from the results file written."""
    errors = passthrough_problems(list(args.pytest_args or []))
    if errors:
        return refuse_usage("run", errors)
    errors = run_preflight(args)
    if errors:
        return refuse_usage("run", errors)
    set_framework_environment(requested_frameworks(args.frameworks))
    threads = worker_threads(args.n, os.cpu_count() or 1)
    set_threads = threads is not None and "OMP_NUM_THREADS" not in os.environ
    if set_threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    args.preflight_json, preflight_done = _start_preflight(args)
    try:
        return _run(args)
    finally:  # (the rerun of lost checks reads the preflight's file too)
        if set_threads:
            os.environ.pop("OMP_NUM_THREADS", None)
        if preflight_done is not None:
            preflight_done.join()
        if args.preflight_json:
            shutil.rmtree(Path(args.preflight_json).parent, ignore_errors=True)
        if getattr(args, "case_list_dir", ""):
            shutil.rmtree(args.case_list_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    """pytest, the rerun of lost checks, ``--require-gpu``, CI outputs and the verdict line."""
    import pytest

    from convt_conformance.results.store import results_of_run

    code = pytest.main(build_pytest_args(args))
    if code == pytest.ExitCode.USAGE_ERROR:  # e.g. --shard N above the checks selected
        return EXIT_USAGE
    if code == pytest.ExitCode.INTERNAL_ERROR:
        return 1
    data = results_of_run(args.results) if Path(args.results).exists() else {"results": [], "problems": [],
                                                                            "environment": {}}
    if code != pytest.ExitCode.INTERRUPTED and data.get("missing_ids"):
        data = _rerun_missing(args, data)
    if args.require_gpu:
        missing = frameworks_without_gpu_checks(data, requested_frameworks(args.frameworks))
        if missing:
            seen = data["environment"].get("framework_devices") or {}
            unavailable = data["environment"].get("unavailable") or {}
            detail = "; ".join(f"{f}: " + (unavailable.get(f) or f"sees {', '.join(seen.get(f, [])) or 'nothing'}")
                               for f in missing)
            print(f"conformance: --require-gpu: NO GPU CHECK RAN for {', '.join(missing)} ({detail})",
                  file=sys.stderr)
            return 2
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("conformance: no checks were collected (check --cases, --tags, --frameworks, --device)",
              file=sys.stderr)
        return 1
    from convt_conformance.results.verdict import run_verdict

    # --- CI outputs (convt_conformance/report/ci_outputs.py): from the results just written ---
    if (args.junit_xml or args.markdown_summary) and Path(args.results).exists():
        write_ci_outputs(args, data, args.report or None, args.results)
    # --- end of CI outputs ---
    verdict = run_verdict(data) if Path(args.results).exists() else run_verdict({"complete": False})
    print(verdict.line())
    return 130 if code == pytest.ExitCode.INTERRUPTED else verdict.exit_code


def _rerun_missing(args: argparse.Namespace, data: dict) -> dict:
    """Run once more the collected checks that have no record (pytest-xdist can lose the items a
    crashed worker held), then write the joined results (and report): complete only if the
    rerun left none missing. The rerun names the checks by node id, under profile ``full``
    (they were selected already) and without shard or probes."""
    import copy
    import json
    import tempfile

    import pytest

    from convt_conformance.results.store import read_results, result_key, write_results

    ids = list(data["missing_ids"])
    print(f"conformance: {len(ids)} collected check(s) have no record (lost with a crashed worker); "
          "running them once more", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        again = copy.copy(args)
        again.only_checks = str(Path(tmp) / "ids.json")
        Path(again.only_checks).write_text(json.dumps(ids), encoding="utf-8")
        again.results, again.report = str(Path(tmp) / "rerun.json"), ""
        again.no_probes, again.shard, again.profile = True, "", "full"
        again.junit_xml = again.markdown_summary = None
        pytest.main(build_pytest_args(again))
        if not Path(again.results).exists():
            return data
        extra = read_results(again.results)
    have = {result_key(r) for r in data["results"]}
    data["results"] = sorted(data["results"] + [r for r in extra["results"] if result_key(r) not in have],
                             key=result_key)
    from convt_conformance.model.check_id import parse_check_id

    got = {result_key(r) for r in extra["results"]}
    data["missing_ids"] = [i for i in ids if tuple(parse_check_id(i) or ()) not in got]
    data["missing_checks"] = len(data["missing_ids"])
    data["complete"] = bool(extra.get("complete")) and not data["missing_ids"] and not data.get("in_progress")
    data["rerun"] = {"checks": len(ids), "recorded": len(extra["results"])}
    write_results(args.results, data)
    if args.report:
        from convt_conformance.report.html import write_report

        write_report(args.report, data)
    return data


def _start_preflight(args: argparse.Namespace) -> tuple[str, threading.Thread | None]:
    """Set each framework up once in a child process (convt_conformance/run/preflight.py), in a thread while
    pytest starts its workers: the path of the JSON file it writes when done (always, even when it
    fails; the processes that need it wait for it: convt_conformance/run/state.py), naming those that
    crash or hang doing so, for the run to leave out, and what the others showed (devices, probe
    rows: a worker then imports a framework only for its first check). ("", None): no preflight."""
    if args.setup_timeout <= 0:
        return "", None
    import json
    import tempfile

    from convt_conformance.run.preflight import preflight

    try:
        frameworks = requested_frameworks(args.frameworks)
    except Exception:
        return "", None  # an unknown name: the run itself reports it as a usage error
    path = Path(tempfile.mkdtemp(prefix="conformance-preflight-")) / "preflight.json"

    def run() -> None:
        out: dict = {"unavailable": {}, "frameworks": {}}
        try:
            out = preflight(frameworks, args.precision, args.setup_timeout)
            for name, why in out["unavailable"].items():
                print(f"conformance: {name} is left out of this run: {why}", file=sys.stderr)
        finally:  # written whatever happened: the workers wait for it
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(out, default=str), encoding="utf-8")
            os.replace(tmp, path)

    thread = threading.Thread(target=run, name="conformance-preflight", daemon=True)
    thread.start()
    return str(path), thread
