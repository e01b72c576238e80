"""The commands besides ``run`` (convt_conformance/cli/run.py): ``validate``, ``devices``, ``plan``,
``report``, ``repro``, ``compare`` and ``merge``."""

from __future__ import annotations

import argparse
import sys

from convt_conformance.cli.common import (
    DEFAULT_CASES,
    case_paths,
    check_paths,
    refuse_usage,
    requested_frameworks,
    write_ci_outputs,
)
from convt_conformance.model.terminal import printable


def cmd_validate(args: argparse.Namespace) -> int:
    from convt_conformance.loading.cases import load_cases

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


def cmd_devices(args: argparse.Namespace) -> int:
    from convt_conformance.adapters.registry import AdapterLoadError, entries, get_adapter, registry_problems
    from convt_conformance.cli.run import set_framework_environment

    frameworks = requested_frameworks(args.frameworks)
    set_framework_environment(frameworks)
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


def cmd_plan(args: argparse.Namespace) -> int:
    from convt_conformance.loading.profiles import ProfileError
    from convt_conformance.run.plan import format_plan, load_run_profile, plan_table, planned_checks

    try:
        profile = load_run_profile(args.profile, args.profiles_file or None)
    except ProfileError as exc:
        print(f"conformance plan: {exc}", file=sys.stderr)
        return 1
    checks, problems = planned_checks(case_paths(args), requested_frameworks(args.frameworks))
    for p in problems:
        print(p, file=sys.stderr)
    print(format_plan(profile, plan_table(profile, checks)))
    return 1 if problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    from convt_conformance.report.html import write_report
    from convt_conformance.results.store import ResultsFileError, read_results

    errors = check_paths("report", args)
    if errors:
        return refuse_usage("report", errors)
    try:
        data = read_results(args.results)
        base = read_results(args.baseline) if args.baseline else None
    except ResultsFileError as exc:
        print(f"conformance report: {printable(exc)}", file=sys.stderr)
        return 1
    write_report(args.output, data, baseline=base, baseline_path=args.baseline)
    print(f"report: {args.output}")
    write_ci_outputs(args, data, args.output, args.results)
    return 0


def cmd_repro(args: argparse.Namespace) -> int:
    from convt_conformance.repro.scripts import find_record, script_for
    from convt_conformance.results.store import ResultsFileError, read_results

    errors = check_paths("repro", args)
    if errors:
        return refuse_usage("repro", errors)
    try:
        data = read_results(args.results)
    except ResultsFileError as exc:
        print(f"conformance repro: {printable(exc)}", file=sys.stderr)
        return 1
    rec = find_record(data, args.check_id)
    if rec is None:
        print(f"conformance repro: no check {args.check_id!r} in {args.results} "
              "(ids look like case[adapter.api-device-dtype])", file=sys.stderr)
        return 1
    script = script_for(data, rec)
    if args.output:
        from convt_conformance.results.files import write_atomic

        write_atomic(args.output, script)
        print(f"reproducer: {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(script)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from convt_conformance.results.regression import (
        compare_results,
        format_comparison,
        refusals,
        run_to_run_differences,
    )
    from convt_conformance.results.store import ResultsFileError, read_results

    errors = check_paths("compare", args)
    if errors:
        return refuse_usage("compare", errors)
    try:
        base, new = read_results(args.base), read_results(args.new)
    except ResultsFileError as exc:
        print(f"conformance compare: {printable(exc)}", file=sys.stderr)
        return 1
    comp = compare_results(base, new, error_growth=args.error_growth, device=args.device)
    print(format_comparison(comp, exact=args.exact))
    if args.report:
        from convt_conformance.report.html import write_report

        write_report(args.report, new, baseline=base, baseline_path=args.base)
        print(f"report: {args.report}")
    refused = refusals(comp)
    for why in refused:
        print(f"conformance compare: {args.new}: {printable(why)}", file=sys.stderr)
    if comp["disappeared"]:
        print(f"conformance compare: {len(comp['disappeared'])} check(s) of {args.base} are missing from "
              f"{args.new} (counted as regressions)", file=sys.stderr)
    if args.exact:
        differ = run_to_run_differences(comp)
        if differ:
            print(f"conformance compare --exact: {len(differ)} check(s) differ between the two runs",
                  file=sys.stderr)
    from convt_conformance.results.verdict import comparison_exit_code

    return comparison_exit_code(comp, refused, args.exact)


def cmd_merge(args: argparse.Namespace) -> int:
    from convt_conformance.cli.paths import lock_output
    from convt_conformance.results.merge import MergeError, merge_results
    from convt_conformance.results.store import ResultsFileError, read_results, write_results

    errors = check_paths("merge", args)
    if not errors:  # held while merging: a run started on OUTPUT meanwhile is refused
        why = lock_output(args.output)
        errors += [f"OUTPUT {why}"] if why else []
    if errors:
        return refuse_usage("merge", errors)
    try:
        payload = merge_results([read_results(f) for f in args.inputs], list(args.inputs))
    except (ResultsFileError, MergeError) as exc:
        print(f"conformance merge: {printable(exc)}", file=sys.stderr)
        return 1
    write_results(args.output, payload)
    print(f"merged {len(payload['results'])} results from {len(args.inputs)} file(s) into {args.output}")
    return 0
