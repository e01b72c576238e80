"""The command-line options of the pytest plugin (``conformance run`` passes them; see
convt_conformance/cli/main.py for the user-facing flags)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from convt_conformance.adapters.registry import adapter_names, entries
from convt_conformance.library import KNOWN_FILE
from convt_conformance.loading.profiles import DEFAULT_PROFILE

DEFAULT_CHECK_TIMEOUT_S = 300.0  # the slowest committed check takes a few seconds
DEFAULT_SETUP_TIMEOUT_S = 180.0  # TensorFlow's import and configure take ~10 s on a busy machine


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("conformance")
    g.addoption("--frameworks", default="",
                help="comma-separated frameworks to run (default: every registered one; see `conformance devices`)")
    g.addoption("--device", default="cpu", choices=("cpu", "gpu", "all"))
    g.addoption("--precision", default="strict", choices=("strict", "default"))
    g.addoption("--tags", default="", help="comma-separated case tags to select")
    g.addoption("--dtypes", default="", help="comma-separated dtypes to restrict to")
    g.addoption("--profile", default=DEFAULT_PROFILE, help="run profile (convt_conformance/loading/profiles.yaml): quick, default, full")
    g.addoption("--profiles-file", default="", help="profiles file (default: the built-in one)")
    g.addoption("--shard", default="", help="K/N: run only shard K of N (deterministic, cost-balanced)")
    g.addoption("--results", default="reports/results.json", help="results file to write")
    g.addoption("--report", default="", help="also write the HTML report here")
    g.addoption("--known", default=str(KNOWN_FILE), help="known-disagreements file (default: the packaged one)")
    g.addoption("--no-probes", action="store_true", help="skip the convention probes")
    g.addoption("--check-timeout", type=float, default=DEFAULT_CHECK_TIMEOUT_S,
                help="seconds one check may take under xdist before its worker is stopped and the "
                     "check recorded as crash/timeout (0: no limit)")
    g.addoption("--setup-timeout", type=float, default=DEFAULT_SETUP_TIMEOUT_S,
                help="seconds a framework's set-up (import, configure) may take in an xdist worker before "
                     "the worker is stopped and the framework left out of the run as unavailable "
                     "(0: --check-timeout bounds it)")
    g.addoption("--conformance-command", default="", help=argparse.SUPPRESS)
    g.addoption("--preflight-json", default="", help=argparse.SUPPRESS)
    g.addoption("--only-checks", default="", help=argparse.SUPPRESS)  # JSON list of node ids: a rerun
    # JSON list of the case files (convt_conformance/loading/cases.py write_case_list), also pytest's
    # one argument: `conformance run` never hands pytest a case file's name, which it could misparse
    g.addoption("--case-list", default="", help=argparse.SUPPRESS)


class _OptionNames:
    """Stands in for pytest's parser and its option group, keeping the names of each option added."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def getgroup(self, name: str, description: str = "") -> _OptionNames:
        return self

    def addoption(self, *names: str, **attrs: Any) -> None:
        self.names.extend(names)


def plugin_option_names() -> tuple[str, ...]:
    """Every command-line option the plugin adds (``--results``, ``--frameworks`` ...), read from
    :func:`pytest_addoption` itself: ``conformance run`` sets them all, and refuses them after ``--``."""
    names = _OptionNames()
    pytest_addoption(names)  # type: ignore[arg-type]  # duck-typed: only getgroup/addoption are called
    return tuple(names.names)


def selected_frameworks(option: str) -> list[str]:
    """The frameworks a ``--frameworks`` value names (empty: every loadable registered one);
    UsageError for a name the registry does not know."""
    frameworks = [f for f in option.split(",") if f] or list(adapter_names())
    unknown = [f for f in frameworks if f not in entries()]
    if unknown:
        raise pytest.UsageError(f"unknown framework(s) {unknown}; known: {', '.join(entries())}")
    return frameworks
