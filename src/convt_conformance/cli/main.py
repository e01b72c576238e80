"""Command line: ``conformance validate | run | plan | devices | report | repro | compare | merge``
(also ``python -m convt_conformance``): the parser and ``main``. The commands: convt_conformance/cli/run.py
(``run``), convt_conformance/cli/commands.py (the others), convt_conformance/cli/common.py (what they share)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from convt_conformance.cli.arguments import (
    MAX_SETUP_TIMEOUT_S,
    check_timeout_seconds,
    error_growth_fraction,
    setup_timeout_seconds,
    shard_spec,
    worker_count,
)
from convt_conformance.cli.commands import (
    cmd_compare,
    cmd_devices,
    cmd_merge,
    cmd_plan,
    cmd_report,
    cmd_repro,
    cmd_validate,
)
from convt_conformance.cli.paths import held_locks, release_locks
from convt_conformance.cli.releases import add_parsers as add_release_parsers
from convt_conformance.cli.run import cmd_run, frameworks_without_gpu_checks

__all__ = ["build_parser", "frameworks_without_gpu_checks", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``conformance`` argument parser (every subcommand)."""
    p = argparse.ArgumentParser(prog="conformance", description="Transposed-convolution conformance suite")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate case files (default: the packaged case library)")
    v.add_argument("paths", nargs="*")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("run", help="run the suite (pytest + xdist underneath)")
    r.add_argument("--cases", nargs="+", help="case files or directories, replacing the packaged case library")
    r.add_argument("--add-cases", nargs="+", default=[], help="case files or directories run with the packaged library")
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
                   help="known-disagreements file, replacing the packaged one (a given file must exist)")
    r.add_argument("--check-timeout", type=check_timeout_seconds, default=300.0,
                   help="seconds one check may run before its worker is stopped and the check recorded "
                        "as crash/timeout (xdist only; > 0, at most a day)")
    r.add_argument("--profile", default=None,
                   help="which checks of each column run: quick, default, full (default: default for the packaged "
                        "library, full with --cases: your own cases run in full)")
    r.add_argument("--profiles-file", default="", help="a profiles file of your own instead of the built-in one")
    r.add_argument("--shard", default="", type=shard_spec, help="K/N: run shard K of N (deterministic, balanced by estimated cost); "
                                               "`conformance merge` joins the shards")
    r.add_argument("--setup-timeout", type=setup_timeout_seconds, default=180.0,
                   help="seconds a framework may take to set up (import, configure, devices) in the preflight "
                        f"before it is left out of the run as unavailable (> 0, at most {MAX_SETUP_TIMEOUT_S:g})")
    r.add_argument("--no-probes", action="store_true",
                   help="skip the convention probes (e.g. in a rerun whose first run had them)")
    r.add_argument("--require-gpu", action="store_true",
                   help="exit 2 when a requested framework (numpy aside) ran no check on a GPU")
    r.add_argument("--junit-xml", help="also write JUnit XML here (one testcase per check)")
    r.add_argument("--markdown-summary", help="also write a short Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    r.add_argument("pytest_args", nargs="*", help="after --: extra pytest options (-k, -m, -x ...)")
    r.set_defaults(func=cmd_run)

    pl = sub.add_parser("plan", help="what a profile runs per API column, with coverage and estimated time")
    pl.add_argument("--cases", nargs="+", help="case files or directories, replacing the packaged case library")
    pl.add_argument("--add-cases", nargs="+", default=[], help="case files or directories planned with the packaged library")
    pl.add_argument("--frameworks", default="")
    pl.add_argument("--profile", default=None, help="as for run (default: default; full with --cases)")
    pl.add_argument("--profiles-file", default="")
    pl.set_defaults(func=cmd_plan)

    d = sub.add_parser("devices", help="which devices each framework sees (imports the frameworks)")
    d.add_argument("--frameworks", default="", help="comma-separated frameworks (default: every registered one)")
    d.add_argument("--require-gpu", action="store_true",
                   help="exit 2 when a requested framework (numpy aside) sees no GPU")
    d.set_defaults(func=cmd_devices)

    rep = sub.add_parser("report", help="render the HTML report of a results file")
    rep.add_argument("results")
    rep.add_argument("-o", "--output", default="reports/conformance.html")
    rep.add_argument("--baseline", help="baseline results file to compare with")
    rep.add_argument("--junit-xml", help="also write JUnit XML here (one testcase per check)")
    rep.add_argument("--markdown-summary", help="also write a short Markdown summary here")
    rep.set_defaults(func=cmd_report)

    rp = sub.add_parser("repro", help="print a standalone Python reproducer of one check")
    rp.add_argument("check_id", help="case[adapter.api-device-dtype], as in the report")
    rp.add_argument("--results", default="reports/results.json")
    rp.add_argument("-o", "--output", help="write the script here instead of stdout")
    rp.set_defaults(func=cmd_repro)

    c = sub.add_parser("compare", help="compare two results files (release regression check)")
    c.add_argument("base")
    c.add_argument("new")
    c.add_argument("--report", help="HTML report of NEW with the comparison")
    c.add_argument("--error-growth", type=error_growth_fraction, default=0.5,
                   help="flag a pass whose error grew by more than this fraction of its tolerance")
    c.add_argument("--device", choices=("cpu", "gpu"), help="compare only the checks run on this device")
    c.add_argument("--exact", action="store_true",
                   help="two runs of the same build: any change of status or error (either way) exits 1")
    c.set_defaults(func=cmd_compare)

    m = sub.add_parser("merge", help="merge results files of disjoint runs (e.g. one per framework)")
    m.add_argument("output")
    m.add_argument("inputs", nargs="+")
    m.set_defaults(func=cmd_merge)

    add_release_parsers(sub)

    return p


def default_profile(cases: list[str] | None) -> str:
    """The profile of a run or plan given none: ``full`` when ``--cases`` replaces the packaged
    library (someone's own cases run in full), else ``default``."""
    return "full" if cases else "default"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if getattr(args, "profile", "") is None:
        args.profile = default_profile(args.cases)
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
