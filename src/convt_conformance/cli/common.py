"""What the ``conformance`` commands share: default paths, the requested frameworks, the path
checks made before a command starts, the refusal message and the CI outputs of ``run`` / ``report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from convt_conformance.cli.paths import Named, output_problems
from convt_conformance.library import CASES_DIR, KNOWN_FILE

#: the packaged case library and known disagreements: what a run uses unless ``--cases`` / ``--known``
#: replace them (``--add-cases`` adds case files to the library)
DEFAULT_CASES = str(CASES_DIR)
DEFAULT_KNOWN = str(KNOWN_FILE)


def case_paths(args: argparse.Namespace) -> list[str]:
    """The case files and folders a command reads: ``--cases`` (replacing the packaged library) or
    the library, then ``--add-cases``."""
    return [*(args.cases or [DEFAULT_CASES]), *(getattr(args, "add_cases", None) or [])]


def requested_frameworks(option: str) -> list[str]:
    from convt_conformance.adapters.registry import adapter_names

    return [f for f in option.split(",") if f] or list(adapter_names())


def check_paths(command: str, args: argparse.Namespace) -> list[str]:
    """Path problems of a command, found before it starts: inputs exist, and every output
    follows the output policy (:mod:`convt_conformance.cli.paths`)."""
    inputs: list[Named] = []
    outputs: list[Named] = []
    errors: list[str] = []
    if command == "run":
        from convt_conformance.loading.cases import discover

        given = case_paths(args)
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
        else:
            inputs.append(("--known", DEFAULT_KNOWN))
        if args.profiles_file:
            inputs.append(("--profiles-file", args.profiles_file))
        from convt_conformance.run.collector import stream_path

        outputs += [("--results", args.results), ("--results (its record stream)", str(stream_path(args.results)))]
        outputs += [("--report", args.report)] if args.report else []
    elif command == "report":
        inputs += [("RESULTS", args.results)] + ([("--baseline", args.baseline)] if args.baseline else [])
        outputs.append(("--output", args.output))
    elif command == "compare":
        inputs += [("BASE", args.base), ("NEW", args.new)]
        outputs += [("--report", args.report)] if args.report else []
    elif command == "merge":
        inputs += [("INPUT", i) for i in args.inputs]
        outputs.append(("OUTPUT", args.output))
    elif command == "repro":
        inputs.append(("--results", args.results))
        outputs += [("--output", args.output)] if args.output else []
    for flag in ("--junit-xml", "--markdown-summary"):
        path = getattr(args, flag[2:].replace("-", "_"), None)
        if path is not None:
            outputs.append((flag, path))
    for flag, path in inputs:
        if flag != "--cases" and not Path(path).is_file():
            errors.append(f"{flag} {path}: no such file")
    return errors + output_problems(outputs, inputs)


#: the exit code of a usage error (argparse's): a bad argument, a path the policy refuses
EXIT_USAGE = 2


def refuse(command: str, errors: list[str], code: int = 1) -> int:
    """Print each error as ``conformance <command>: <error>`` and return ``code``."""
    for e in errors:
        print(f"conformance {command}: {e}", file=sys.stderr)
    return code


def refuse_usage(command: str, errors: list[str]) -> int:
    """:func:`refuse` with the usage-error exit code (:data:`EXIT_USAGE`)."""
    return refuse(command, errors, EXIT_USAGE)


def write_ci_outputs(args: argparse.Namespace, data: dict[str, Any], report: str | None, results: str | None) -> None:
    """``--junit-xml`` / ``--markdown-summary`` of ``run`` and ``report``."""
    from convt_conformance.report.ci_outputs import write_junit_xml, write_markdown_summary

    if args.junit_xml:
        write_junit_xml(args.junit_xml, data)
        print(f"junit xml: {args.junit_xml}", file=sys.stderr)
    if args.markdown_summary:
        write_markdown_summary(args.markdown_summary, data, report_path=report, results_path=results)
        print(f"markdown summary: {args.markdown_summary}", file=sys.stderr)
