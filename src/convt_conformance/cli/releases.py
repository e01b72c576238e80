"""``conformance releases`` and ``conformance bisect``: a framework's releases as an axis."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from convt_conformance.cli.arguments import release_count, shard_spec, worker_count
from convt_conformance.cli.common import refuse, refuse_usage
from convt_conformance.cli.paths import Named, folder_problem, output_problems
from convt_conformance.model.terminal import printable


def _releases_of(args: argparse.Namespace, target_dist: str) -> list[str]:
    from convt_conformance.releases.index import choose, fetch_release_files, installable_versions

    versions = installable_versions(fetch_release_files(target_dist))
    chosen = choose(versions, last=args.last, spec=args.spec, listed=args.versions or ())
    return [str(v) for v in chosen]


def _out_problems(out_dir: Path, outputs: list[str], inputs: list[Named], results: list[str]) -> list[str]:
    """The output policy (:mod:`convt_conformance.cli.paths`) for what a command writes in
    ``--out``: the folder itself, the files ``outputs`` (checked as outputs), and the release
    results files ``results`` (written by each release's own run: regular files or absent)."""
    folder = folder_problem("--out", str(out_dir))
    if folder:
        return [folder]
    named = [("--out", str(out_dir / name)) for name in outputs + results]
    return output_problems(named, inputs)


def _inputs(args: argparse.Namespace) -> list[Named]:
    return [("--cases", c) for c in args.cases or []] + ([("--known", args.known)] if getattr(args, "known", None) else [])


def _run_args(args: argparse.Namespace) -> list[str]:
    out = ["--profile", args.profile, "-n", args.n]
    if args.cases:
        out += ["--cases", *args.cases]
    if args.known:
        out += ["--known", args.known]
    if getattr(args, "shard", None):
        out += ["--shard", args.shard]
    return out


def cmd_releases(args: argparse.Namespace) -> int:
    """Run a profile on each chosen release of a framework and draw the release matrix."""
    from convt_conformance.releases.envs import EnvError
    from convt_conformance.releases.index import ReleaseIndexError
    from convt_conformance.releases.runs import existing_run, run_release, write_outputs
    from convt_conformance.releases.target import resolve_target
    from convt_conformance.results.store import ResultsFileError

    try:
        target = resolve_target(args.target, args.distribution)
        versions = _releases_of(args, target.distribution)
    except (ValueError, ReleaseIndexError) as exc:
        return refuse("releases", [str(exc)])
    if not versions:
        return refuse("releases", [f"no installable release of {target.distribution} matches"])
    out_dir = Path(args.out or f"reports/releases/{target.distribution}")
    from convt_conformance.releases.runs import MATRIX_FILES, results_path

    per_release = [results_path(out_dir, target, v).name for v in versions]
    errors = _out_problems(out_dir, list(MATRIX_FILES), _inputs(args), [] if args.matrix_only else per_release)
    if errors:
        return refuse_usage("releases", errors)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"conformance releases: {target.framework} ({target.distribution}) {', '.join(versions)} -> {out_dir}",
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    if args.matrix_only:  # the results are there already (e.g. merged from a CI matrix of releases x shards)
        try:
            matrix, page = write_outputs(out_dir, target, [existing_run(out_dir, target, v) for v in versions])
        except ResultsFileError as exc:
            return refuse("releases", [printable(exc)])
        print(f"release matrix: {page} ({len(matrix.rows)} check(s) differ across {len(matrix.releases)} releases)")
        return 0 if len(matrix.releases) == len(versions) else 1
    runs, failed = [], []
    for v in versions:
        try:
            runs.append(run_release(target, v, out_dir, _run_args(args), index_args=args.index_arg))
        except EnvError as exc:
            failed.append(f"{target.distribution} {v}: {exc}")
            print(f"conformance releases: {failed[-1]}", file=sys.stderr, flush=True)
    try:
        matrix, page = write_outputs(out_dir, target, runs)
    except ResultsFileError as exc:
        return refuse("releases", [printable(exc)])
    total = time.perf_counter() - start
    print(f"release matrix: {page} ({len(matrix.rows)} check(s) differ across {len(matrix.releases)} releases; "
          f"{total:.0f} s in all, environments {sum(r.env.created_s for r in runs):.0f} s)")
    missing = [r.version for r in runs if not r.results.is_file()]
    for v in missing:
        failed.append(f"{target.distribution} {v}: the run wrote no results file")
    for f in failed:
        print(f"conformance releases: {f}", file=sys.stderr)
    return 1 if failed else 0


def cmd_bisect(args: argparse.Namespace) -> int:
    """The first release between --good and --bad whose outcome on CHECK_ID differs from --good's."""
    from convt_conformance.model.check_id import Check
    from convt_conformance.releases.bisect import CheckRunner, bisect_outcomes
    from convt_conformance.releases.envs import EnvError
    from convt_conformance.releases.index import ReleaseIndexError, between, fetch_release_files, installable_versions
    from convt_conformance.releases.target import resolve_target
    from convt_conformance.repro.scripts import script_for
    from convt_conformance.results.store import ResultsFileError, read_results

    check = Check.parse(args.check_id.rsplit("::", 1)[-1])
    if check is None:
        return refuse("bisect", [f"CHECK_ID {args.check_id!r}: not a check id (<case>[<adapter>.<api>-<device>-<dtype>])"])
    try:
        target = resolve_target(args.framework, args.distribution)
        versions = [str(v) for v in between(installable_versions(fetch_release_files(target.distribution)),
                                             args.good, args.bad)]
    except (ValueError, ReleaseIndexError) as exc:
        return refuse("bisect", [str(exc)])
    if args.good not in versions or args.bad not in versions:
        return refuse("bisect", [f"--good {args.good} / --bad {args.bad}: not installable releases of "
                                 f"{target.distribution} ({', '.join(versions) or 'none between them'})"])
    if check.adapter != target.framework:
        return refuse("bisect", [f"CHECK_ID is a check of {check.adapter}, not of --framework {target.framework}"])
    if versions.index(args.good) > versions.index(args.bad):
        versions.reverse()
    out_dir = Path(args.out or f"reports/bisect/{target.distribution}")
    from convt_conformance.releases.runs import results_path

    errors = _out_problems(out_dir, [_bisect_repro_name(target.distribution, v) for v in versions], _inputs(args),
                           [results_path(out_dir, target, v).name for v in versions])
    if errors:
        return refuse_usage("bisect", errors)
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = CheckRunner(target, check, out_dir, (["--cases", *args.cases] if args.cases else []),
                         index_args=args.index_arg)
    try:
        found = bisect_outcomes(versions, runner.outcome)
        # the boundary's records and the first bad run (read here: a results file may be refused)
        first_bad = found.first_bad
        records = {v: runner.record(v) for v in (found.last_good, first_bad)} if first_bad else {}
        bad_run = read_results(out_dir / f"results-{target.distribution}-{first_bad}.json") \
            if first_bad and records.get(first_bad) is not None else None
    except (EnvError, ResultsFileError) as exc:
        return refuse("bisect", [printable(exc)])
    print(f"{check.id} on {target.distribution}: {' '.join(f'{v}={o}' for v, o in found.evaluated)}")
    if found.first_bad is None:
        print(f"no change: {args.bad} has {args.good}'s outcome ({found.good_outcome})")
        return 1
    print(f"boundary: {found.last_good} ({found.good_outcome}) -> {found.first_bad} ({found.bad_outcome})")
    for v in (found.last_good, found.first_bad):
        rec = records.get(v)
        msg = (rec or {}).get("message") or ""
        print(printable(f"  {v}: status {(rec or {}).get('status', 'absent')}"
                        f"{'/' + str(rec['failure_kind']) if rec and rec.get('failure_kind') else ''}"
                        f"{': ' + str(msg)[:300] if msg else ''}"))
    rec = records.get(found.first_bad)
    if rec is not None and bad_run is not None and rec.get("status") not in ("pass", "rejected"):
        script = script_for(bad_run, dict(rec))
        from convt_conformance.results.files import write_atomic

        repro = out_dir / _bisect_repro_name(target.distribution, found.first_bad)
        write_atomic(repro, script)
        print(f"reproducer of {found.first_bad}: {repro}")
    return 0


def _bisect_repro_name(distribution: str, version: str) -> str:
    return f"repro-{distribution}-{version}.py"


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The two commands' parsers."""
    r = sub.add_parser("releases", help="run a profile on several releases of one framework; draw the release matrix")
    r.add_argument("target", help="a framework (its name in --frameworks) or one of the distributions it declares")
    r.add_argument("--distribution", help="the distribution whose releases vary (default: the framework's first)")
    pick = r.add_mutually_exclusive_group(required=True)
    pick.add_argument("--last", type=release_count, help="the last N installable final releases on the package index")
    pick.add_argument("--versions", nargs="+", help="these releases")
    pick.add_argument("--spec", help="every installable release matching a PEP 440 specifier, e.g. '>=3.12,<3.16'")
    r.add_argument("--profile", default="default")
    r.add_argument("-n", default="auto", type=worker_count, help="workers of each run (as for run)")
    r.add_argument("--shard", type=shard_spec, help="K/N: each release runs shard K of N (results-<dist>-<version>.json in --out: "
                                   "merge the shards of a release there, then --matrix-only)")
    r.add_argument("--matrix-only", action="store_true",
                   help="run nothing: draw the matrix from the results files already in --out")
    r.add_argument("--cases", nargs="+", help="case files or folders instead of the packaged library")
    r.add_argument("--known", help="a known-disagreements file instead of the packaged one")
    r.add_argument("--out", help="folder of the results files and the matrix page (default: reports/releases/<dist>)")
    r.add_argument("--index-arg", action="append", default=[],
                   help="an argument for the installer, e.g. --index-arg=--find-links=DIR (repeatable)")
    r.set_defaults(func=cmd_releases)

    b = sub.add_parser("bisect", help="the first release whose outcome on one check differs from a good release's")
    b.add_argument("check_id", help="<case>[<adapter>.<api>-<device>-<dtype>], as in a results file or the report")
    b.add_argument("--framework", required=True, help="the framework (or its distribution) whose releases vary")
    b.add_argument("--distribution", help="the distribution whose releases vary (default: the framework's first)")
    b.add_argument("--good", required=True, help="a release with the expected outcome")
    b.add_argument("--bad", required=True, help="a release with another outcome")
    b.add_argument("--cases", nargs="+", help="case files or folders instead of the packaged library")
    b.add_argument("--out", help="folder of the per-release results and the reproducer (default: reports/bisect/<dist>)")
    b.add_argument("--index-arg", action="append", default=[], help="an argument for the installer (repeatable)")
    b.set_defaults(func=cmd_bisect)
