"""Command line: ``conformance validate | run | devices | report | repro | compare | merge`` (also ``python -m conformance``)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
from pathlib import Path

from conformance.paths import held_locks, lock_output, output_problem, release_locks, same_file

DEFAULT_CASES = "cases"
DEFAULT_KNOWN = "known_disagreements.yaml"


def _cmd_validate(args: argparse.Namespace) -> int:
    from conformance.cases import load_cases

    paths = args.paths or [DEFAULT_CASES]
    result = load_cases(paths)
    for p in result.problems:
        print(p, file=sys.stderr)
    n_files = len(result.files)
    if result.problems:
        print(f"{len(result.problems)} problem(s) in {n_files} file(s); {len(result.cases)} valid case(s)",
              file=sys.stderr)
        return 1
    if n_files == 0:
        print(f"no case files found under {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    print(f"OK: {len(result.cases)} case(s) in {n_files} file(s)")
    return 0


def build_pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest command line behind ``conformance run``. The case files are found by
    :func:`conformance.cases.discover` (the walker of ``validate`` too) and passed to pytest one by
    one, so both commands read the same files (pytest's own walk follows symlink loops)."""
    from conformance.cases import discover

    given = args.cases or [DEFAULT_CASES]
    files = [str(f) for f in discover(given)] or list(given)
    pa = [*files, "-p", "conformance.pytest_plugin", "-p", "no:cacheprovider",
          "-o", "addopts=", "-o", "testpaths=", "--rootdir", os.getcwd(),
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
    pa += ["--check-timeout", str(args.check_timeout)]
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
    # cost ~5 s a process) and no hypothesis plugin (it imports hypothesis at the end: ~4 s)
    pa += ["-q", "-rN", "--no-header", "-p", "no:faulthandler", "-p", "no:hypothesispytest", "--assert=plain",
           *tb] + extra
    return pa


MAX_WORKER_RESTARTS = 200


def _gpu_capable(name: str) -> bool:
    from adapters.registry import AdapterLoadError, adapter_class

    try:
        return adapter_class(name).gpu_capable
    except AdapterLoadError:
        return True  # a broken plugin cannot have run on a GPU: it is reported as missing


def frameworks_without_gpu_checks(data: dict, frameworks: list[str]) -> list[str]:
    """The requested GPU-capable frameworks (the adapter's ``gpu_capable``) with no check on
    device ``gpu`` in ``data``."""
    on_gpu = {r["adapter"] for r in data["results"] if r["device"] == "gpu"}
    return [f for f in frameworks if _gpu_capable(f) and f not in on_gpu]


def _requested(option: str) -> list[str]:
    from adapters.registry import adapter_names

    return [f for f in option.split(",") if f] or list(adapter_names())


def _cmd_devices(args: argparse.Namespace) -> int:
    from adapters.registry import AdapterLoadError, entries, get_adapter, registry_problems

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    frameworks = _requested(args.frameworks)
    known = entries()
    unknown = [f for f in frameworks if f not in known]
    if unknown:
        print(f"conformance devices: unknown framework(s) {unknown}; known: {', '.join(known)}",
              file=sys.stderr)
        return 1
    missing = []
    for name in frameworks:
        origin = f"[{known[name].origin}: {known[name].target}]"
        try:
            a = get_adapter(name)
        except AdapterLoadError as exc:
            print(f"{name} {origin}: BROKEN: {exc}")
            missing.append(name)
            continue
        why = a.unavailable_reason() if a.installed() else f"not installed ({a.module or name})"
        devices = [] if why else a.devices()
        print(f"{name} {a.version() or '(not installed)'} {origin}: " + (why or ", ".join(devices)))
        if a.gpu_capable and "gpu" not in devices:
            missing.append(name)
    for p in registry_problems():
        if not any(p.startswith(f"framework {n!r}") for n in frameworks):
            print(f"plugin problem: {p}", file=sys.stderr)
    if args.require_gpu and missing:
        print(f"conformance devices: --require-gpu: NO GPU visible to {', '.join(missing)}", file=sys.stderr)
        return 2
    return 0


def default_jax_cache() -> str:
    """JAX's persistent compile cache unless ``CONFORMANCE_JAX_CACHE`` is set:
    ``$XDG_CACHE_HOME/convt-conformance/jax``, else ``~/.cache/convt-conformance/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "convt-conformance" / "jax")


def check_paths(command: str, args: argparse.Namespace) -> list[str]:
    """Path problems of a command, found before it starts: inputs exist, outputs are writable
    files, and no output would overwrite an input or another output."""
    inputs: list[tuple[str, str]] = []
    outputs: list[tuple[str, str]] = []
    errors: list[str] = []
    if command == "run":
        from conformance.cases import discover

        given = args.cases or [DEFAULT_CASES]
        errors += [f"--cases {c}: no such file or directory" for c in given if not Path(c).exists()]
        found = discover([c for c in given if Path(c).exists()])
        inputs += [("--cases", str(f)) for f in found]
        errors += [f"--cases {f}: not a case file (the name must end in .yaml or .yml)"
                   for f in found if f.suffix not in (".yaml", ".yml")]
        if not found and not errors:
            errors.append(f"--cases {' '.join(map(str, given))}: no case files found")
        if args.known is not None:
            if not Path(args.known).is_file():
                errors.append(f"--known {args.known}: no such file")
            inputs.append(("--known", args.known))
        elif Path(DEFAULT_KNOWN).is_file():
            inputs.append(("--known", DEFAULT_KNOWN))
        else:
            print(f"conformance run: note: no {DEFAULT_KNOWN} here; no disagreement is known", file=sys.stderr)
        outputs += [("--results", args.results)] + ([("--report", args.report)] if args.report else [])
    elif command == "report":
        inputs += [("RESULTS", args.results)] + ([("--baseline", args.baseline)] if args.baseline else [])
        outputs.append(("--output", args.output))
    elif command == "compare":
        inputs += [("BASE", args.base), ("NEW", args.new)]
        outputs += [("--report", args.report)] if args.report else []
    elif command == "merge":
        inputs += [("INPUT", i) for i in args.inputs]
        outputs.append(("OUTPUT", args.output))
    for flag, path in inputs:
        if flag != "--cases" and not Path(path).is_file():
            errors.append(f"{flag} {path}: no such file")
    for i, (flag, path) in enumerate(outputs):
        why = output_problem(flag, path)
        if why:
            errors.append(why)
        for iflag, ipath in inputs:
            if same_file(path, ipath):
                errors.append(f"{flag} {path}: is also the input {iflag} {ipath}; it would be overwritten")
        for oflag, opath in outputs[:i]:
            if same_file(path, opath):
                errors.append(f"{flag} {path}: is also the output {oflag}; one would overwrite the other")
    return errors


def _refuse(command: str, errors: list[str]) -> int:
    for e in errors:
        print(f"conformance {command}: {e}", file=sys.stderr)
    return 1


def run_preflight(args: argparse.Namespace) -> list[str]:
    """Everything ``run`` checks before starting: paths (:func:`check_paths`), then the results lock."""
    errors = check_paths("run", args)
    if not errors:
        why = lock_output(args.results)
        if why:
            errors.append(why)
    return errors


def _cmd_run(args: argparse.Namespace) -> int:
    import pytest

    from conformance.results import read_results

    errors = run_preflight(args)
    if errors:
        return _refuse("run", errors)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CONFORMANCE_JAX_CACHE", default_jax_cache())
    args.preflight_json = _preflight(args)
    try:
        code = pytest.main(build_pytest_args(args))
    finally:
        if args.preflight_json:
            Path(args.preflight_json).unlink(missing_ok=True)
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        return 1
    data = read_results(args.results) if Path(args.results).exists() else {"results": [], "problems": [],
                                                                            "environment": {}}
    if code != pytest.ExitCode.INTERRUPTED and data.get("missing_ids"):
        data = _rerun_missing(args, data)
    if args.require_gpu:
        missing = frameworks_without_gpu_checks(data, _requested(args.frameworks))
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
    from conformance.verdict import run_verdict

    # --- CI outputs (conformance/ci_outputs.py): from the results just written ---
    if (args.junit_xml or args.markdown_summary) and Path(args.results).exists():
        _write_ci_outputs(args, data, args.report or None, args.results)
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

    from conformance.results import read_results, result_key, write_results

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
    from conformance.check_id import parse_check_id

    got = {result_key(r) for r in extra["results"]}
    data["missing_ids"] = [i for i in ids if tuple(parse_check_id(i) or ()) not in got]
    data["missing_checks"] = len(data["missing_ids"])
    data["complete"] = bool(extra.get("complete")) and not data["missing_ids"] and not data.get("in_progress")
    data["rerun"] = {"checks": len(ids), "recorded": len(extra["results"])}
    write_results(args.results, data)
    if args.report:
        from conformance.report import write_report

        write_report(args.report, data)
    return data


def _preflight(args: argparse.Namespace) -> str:
    """Set each framework up once in a child process (conformance/preflight.py); the path of a
    JSON file naming those that crash or hang doing so, for the run to leave out ("" if none)."""
    if args.setup_timeout <= 0:
        return ""
    import json
    import tempfile

    from conformance.preflight import preflight

    try:
        frameworks = _requested(args.frameworks)
    except Exception:
        return ""  # an unknown name: the run itself reports it as a usage error
    out = preflight(frameworks, args.precision, args.setup_timeout)
    for name, why in out["unavailable"].items():
        print(f"conformance: {name} is left out of this run: {why}", file=sys.stderr)
    if not out["unavailable"]:
        return ""
    fd, path = tempfile.mkstemp(prefix="conformance-preflight-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh)
    return path


def _cmd_plan(args: argparse.Namespace) -> int:
    from conformance.plan import format_plan, plan_table, planned_checks
    from conformance.profiles import ProfileError, load_profile

    try:
        profile = load_profile(args.profile, args.profiles_file or None)
    except ProfileError as exc:
        print(f"conformance plan: {exc}", file=sys.stderr)
        return 1
    checks, problems = planned_checks(args.cases or [DEFAULT_CASES], _requested(args.frameworks))
    for p in problems:
        print(p, file=sys.stderr)
    print(format_plan(profile, plan_table(profile, checks)))
    return 1 if problems else 0


def _write_ci_outputs(args: argparse.Namespace, data: dict, report: str | None, results: str | None) -> None:
    """``--junit-xml`` / ``--markdown-summary`` of ``run`` and ``report``."""
    from conformance.ci_outputs import write_junit_xml, write_markdown_summary

    if args.junit_xml:
        write_junit_xml(args.junit_xml, data)
        print(f"junit xml: {args.junit_xml}", file=sys.stderr)
    if args.markdown_summary:
        write_markdown_summary(args.markdown_summary, data, report_path=report, results_path=results)
        print(f"markdown summary: {args.markdown_summary}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> int:
    from conformance.report import write_report
    from conformance.results import ResultsFileError, read_results

    errors = check_paths("report", args)
    if errors:
        return _refuse("report", errors)
    try:
        data = read_results(args.results)
        base = read_results(args.baseline) if args.baseline else None
    except ResultsFileError as exc:
        print(f"conformance report: {exc}", file=sys.stderr)
        return 1
    write_report(args.output, data, baseline=base, baseline_path=args.baseline)
    print(f"report: {args.output}")
    _write_ci_outputs(args, data, args.output, args.results)
    return 0


def _cmd_repro(args: argparse.Namespace) -> int:
    from conformance.repro import find_record, script_for
    from conformance.results import ResultsFileError, read_results

    try:
        data = read_results(args.results)
    except ResultsFileError as exc:
        print(f"conformance repro: {exc}", file=sys.stderr)
        return 1
    rec = find_record(data, args.check_id)
    if rec is None:
        print(f"conformance repro: no check {args.check_id!r} in {args.results} "
              "(ids look like case[adapter.api-device-dtype])", file=sys.stderr)
        return 1
    script = script_for(data, rec)
    if args.output:
        Path(args.output).write_text(script, encoding="utf-8")
        print(f"reproducer: {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(script)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from conformance.regression import compare_results, format_comparison, refusals, run_to_run_differences
    from conformance.results import ResultsFileError, read_results

    errors = check_paths("compare", args)
    if errors:
        return _refuse("compare", errors)
    try:
        base, new = read_results(args.base), read_results(args.new)
    except ResultsFileError as exc:
        print(f"conformance compare: {exc}", file=sys.stderr)
        return 1
    comp = compare_results(base, new, error_growth=args.error_growth, device=args.device)
    print(format_comparison(comp, exact=args.exact))
    if args.report:
        from conformance.report import write_report

        write_report(args.report, new, baseline=base, baseline_path=args.base)
        print(f"report: {args.report}")
    refused = refusals(comp)
    for why in refused:
        print(f"conformance compare: {args.new}: {why}", file=sys.stderr)
    if comp["disappeared"]:
        print(f"conformance compare: {len(comp['disappeared'])} check(s) of {args.base} are missing from "
              f"{args.new} (counted as regressions)", file=sys.stderr)
    if args.exact:
        differ = run_to_run_differences(comp)
        if differ:
            print(f"conformance compare --exact: {len(differ)} check(s) differ between the two runs",
                  file=sys.stderr)
    from conformance.verdict import comparison_exit_code

    return comparison_exit_code(comp, refused, args.exact)


def _cmd_merge(args: argparse.Namespace) -> int:
    from conformance.merge import MergeError, merge_results
    from conformance.results import ResultsFileError, read_results, write_results

    errors = check_paths("merge", args)
    if errors:
        return _refuse("merge", errors)
    try:
        payload = merge_results([read_results(f) for f in args.inputs], list(args.inputs))
    except (ResultsFileError, MergeError) as exc:
        print(f"conformance merge: {exc}", file=sys.stderr)
        return 1
    write_results(args.output, payload)
    print(f"merged {len(payload['results'])} results from {len(args.inputs)} file(s) into {args.output}")
    return 0


def _finite_non_negative(text: str, noun: str, wanted: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give {wanted}")
    return value


def check_timeout_seconds(text: str) -> float:
    """argparse type of ``--check-timeout``: a finite number of seconds >= 0 (0: no limit)."""
    return _finite_non_negative(text, "number of seconds", "a finite number of seconds >= 0 (0: no limit)")


def worker_count(text: str) -> str:
    """argparse type of ``-n``: ``auto``, ``logical`` or a whole number >= 0 (0: in-process)."""
    if text in ("auto", "logical"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of workers >= 0, or auto") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of workers >= 0, or auto")
    return str(value)


def error_growth_fraction(text: str) -> float:
    """argparse type of ``compare --error-growth``: a finite fraction >= 0."""
    return _finite_non_negative(text, "number", "a finite fraction >= 0")


def build_parser() -> argparse.ArgumentParser:
    """The ``conformance`` argument parser (every subcommand)."""
    p = argparse.ArgumentParser(prog="conformance", description="Transposed-convolution conformance suite")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate case files (default: cases/)")
    v.add_argument("paths", nargs="*")
    v.set_defaults(func=_cmd_validate)

    r = sub.add_parser("run", help="run the suite (pytest + xdist underneath)")
    r.add_argument("--cases", nargs="+", help="case files or directories (default: cases/)")
    r.add_argument("--tags", default="", help="comma-separated tags")
    r.add_argument("--frameworks", default="",
                   help="comma-separated frameworks (default: every registered one; `conformance devices` lists them)")
    r.add_argument("--device", choices=("cpu", "gpu", "all"), default="cpu")
    r.add_argument("--precision", choices=("strict", "default"), default="strict")
    r.add_argument("--dtypes", default="", help="comma-separated dtypes to restrict to")
    r.add_argument("-n", default="auto", type=worker_count, help="pytest-xdist workers (0: in-process, no crash isolation)")
    r.add_argument("--results", default="reports/results.json")
    r.add_argument("--report", default="", help="HTML report to write")
    r.add_argument("--known", default=None,
                   help=f"known-disagreements file (default: {DEFAULT_KNOWN} when present; a given file must exist)")
    r.add_argument("--check-timeout", type=check_timeout_seconds, default=300.0,
                   help="seconds one check may run before its worker is stopped and the check recorded "
                        "as crash/timeout (xdist only; 0: no limit)")
    r.add_argument("--profile", default="default",
                   help="which checks of each column run (conformance/profiles.yaml): quick, default, full")
    r.add_argument("--profiles-file", default="", help="a profiles file of your own instead of the built-in one")
    r.add_argument("--shard", default="", help="K/N: run shard K of N (deterministic, balanced by estimated cost); "
                                               "`conformance merge` joins the shards")
    r.add_argument("--setup-timeout", type=float, default=180.0,
                   help="seconds a framework may take to set up (import, configure, devices) in the preflight "
                        "before it is left out of the run as unavailable (0: no preflight)")
    r.add_argument("--no-probes", action="store_true",
                   help="skip the convention probes (e.g. in a rerun whose first run had them)")
    r.add_argument("--require-gpu", action="store_true",
                   help="exit 2 when a requested framework (numpy aside) ran no check on a GPU")
    r.add_argument("--junit-xml", help="also write JUnit XML here (one testcase per check)")
    r.add_argument("--markdown-summary", help="also write a short Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    r.add_argument("pytest_args", nargs="*", help="after --: extra pytest options (-k, -m, -x ...)")
    r.set_defaults(func=_cmd_run)

    pl = sub.add_parser("plan", help="what a profile runs per API column, with coverage and estimated time")
    pl.add_argument("--cases", nargs="+")
    pl.add_argument("--frameworks", default="")
    pl.add_argument("--profile", default="default")
    pl.add_argument("--profiles-file", default="")
    pl.set_defaults(func=_cmd_plan)

    d = sub.add_parser("devices", help="which devices each framework sees (imports the frameworks)")
    d.add_argument("--frameworks", default="", help="comma-separated frameworks (default: every registered one)")
    d.add_argument("--require-gpu", action="store_true",
                   help="exit 2 when a requested framework (numpy aside) sees no GPU")
    d.set_defaults(func=_cmd_devices)

    rep = sub.add_parser("report", help="render the HTML report of a results file")
    rep.add_argument("results")
    rep.add_argument("-o", "--output", default="reports/conformance.html")
    rep.add_argument("--baseline", help="baseline results file to compare with")
    rep.add_argument("--junit-xml", help="also write JUnit XML here (one testcase per check)")
    rep.add_argument("--markdown-summary", help="also write a short Markdown summary here")
    rep.set_defaults(func=_cmd_report)

    rp = sub.add_parser("repro", help="print a standalone Python reproducer of one check")
    rp.add_argument("check_id", help="case[adapter.api-device-dtype], as in the report")
    rp.add_argument("--results", default="reports/results.json")
    rp.add_argument("-o", "--output", help="write the script here instead of stdout")
    rp.set_defaults(func=_cmd_repro)

    c = sub.add_parser("compare", help="compare two results files (release regression check)")
    c.add_argument("base")
    c.add_argument("new")
    c.add_argument("--report", help="HTML report of NEW with the comparison")
    c.add_argument("--error-growth", type=error_growth_fraction, default=0.5,
                   help="flag a pass whose error grew by more than this fraction of its tolerance")
    c.add_argument("--device", choices=("cpu", "gpu"), help="compare only the checks run on this device")
    c.add_argument("--exact", action="store_true",
                   help="two runs of the same build: any change of status or error (either way) exits 1")
    c.set_defaults(func=_cmd_compare)

    m = sub.add_parser("merge", help="merge results files of disjoint runs (e.g. one per framework)")
    m.add_argument("output")
    m.add_argument("inputs", nargs="+")
    m.set_defaults(func=_cmd_merge)

    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    locks_before = held_locks()
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`conformance compare ... | head`): stop quietly, as Unix tools do
        with contextlib.suppress(Exception):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        release_locks(keep=locks_before)


if __name__ == "__main__":
    raise SystemExit(main())
