"""The argparse types of ``conformance``'s numeric options: every number the parser takes is
finite and bounded, and anything else is a usage error (exit 2) with the reason."""

from __future__ import annotations

import argparse
import math

from convt_conformance.loading.profiles import ProfileError, Shard
from convt_conformance.run.state import PREFLIGHT_WAIT_S

#: ``-n``: the most pytest-xdist workers a run may ask for
MAX_WORKERS = 1024
#: ``--check-timeout``: the longest a single check may be given (seconds; one day)
MAX_CHECK_TIMEOUT_S = 86_400.0
#: ``--setup-timeout``: a framework's set-up gets two attempts, and the workers wait
#: ``PREFLIGHT_WAIT_S`` for the preflight, so one attempt may take at most half of that
MAX_SETUP_TIMEOUT_S = PREFLIGHT_WAIT_S / 2
#: ``compare --error-growth``: the largest growth of a pass's error (a fraction of its tolerance)
MAX_ERROR_GROWTH = 1_000.0
#: ``releases --last``: the most releases one command runs
MAX_RELEASES = 1_000


def _bounded_number(text: str, noun: str, low: float, high: float, *, low_included: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
    above = value >= low if low_included else value > low
    if not math.isfinite(value) or not above or value > high:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a finite {noun} {'>=' if low_included else '>'} {low:g}, at most {high:g}")
    return value


def check_timeout_seconds(text: str) -> float:
    """argparse type of ``--check-timeout``: a finite number of seconds > 0, at most
    :data:`MAX_CHECK_TIMEOUT_S`."""
    return _bounded_number(text, "number of seconds", 0.0, MAX_CHECK_TIMEOUT_S, low_included=False)


def setup_timeout_seconds(text: str) -> float:
    """argparse type of ``--setup-timeout``: a finite number of seconds > 0, at most
    :data:`MAX_SETUP_TIMEOUT_S` (0 used to turn the preflight off, and a framework that crashed
    while setting up then restarted the workers over and over)."""
    return _bounded_number(text, "number of seconds", 0.0, MAX_SETUP_TIMEOUT_S, low_included=False)


def error_growth_fraction(text: str) -> float:
    """argparse type of ``compare --error-growth``: a finite fraction >= 0, at most
    :data:`MAX_ERROR_GROWTH`."""
    return _bounded_number(text, "fraction", 0.0, MAX_ERROR_GROWTH, low_included=True)


def worker_count(text: str) -> str:
    """argparse type of ``-n``: ``auto``, ``logical`` or a whole number from 0 (in-process) to
    :data:`MAX_WORKERS`."""
    if text in ("auto", "logical"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a whole number of workers >= 0, at most {MAX_WORKERS}, or auto")
    return str(value)


def release_count(text: str) -> int:
    """argparse type of ``releases --last``: a whole number from 1 to :data:`MAX_RELEASES`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_RELEASES:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of releases >= 1, at most {MAX_RELEASES}")
    return value


def shard_spec(text: str) -> str:
    """argparse type of ``--shard``: ``K/N`` with 1 <= K <= N <= ``MAX_SHARDS``
    (:meth:`convt_conformance.loading.profiles.Shard.parse`); N above the checks selected is
    refused once they are known. The text is kept (it is handed to the run); empty: no shard."""
    if not text:
        return text
    try:
        Shard.parse(text)
    except ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard ")) from None
    return text
