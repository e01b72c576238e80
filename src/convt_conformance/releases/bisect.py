"""``conformance bisect``: the first release whose outcome on one check differs from a good
release's, by binary search over the installable releases between a good and a bad one (their
environments cached as for ``conformance releases``)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convt_conformance.model.check_id import Check
from convt_conformance.releases.envs import release_env
from convt_conformance.releases.runs import results_path, run_in_env
from convt_conformance.releases.target import Target
from convt_conformance.results.release_matrix import ABSENT, outcome
from convt_conformance.results.store import read_results


@dataclass
class Boundary:
    """The search's answer: the last release with the good outcome and the first without it (None
    when the bad release has the good one's outcome), and every release evaluated, in order."""

    good_outcome: str
    last_good: str
    first_bad: str | None
    bad_outcome: str | None
    evaluated: list[tuple[str, str]] = field(default_factory=list)


def bisect_outcomes(versions: Sequence[str], outcome_of: Callable[[str], str]) -> Boundary:
    """Binary search over ``versions`` (ascending, the good release first and the bad one last) for
    the first release whose outcome differs from the first's. Evaluates the two ends, then about
    log2(n) releases; assumes one change between them (a release matrix shows more)."""
    if len(versions) < 2:
        raise ValueError("bisect needs a good and a bad release")
    seen: dict[str, str] = {}

    def look(v: str) -> str:
        if v not in seen:
            seen[v] = outcome_of(v)
        return seen[v]

    good = look(versions[0])
    lo, hi = 0, len(versions) - 1
    if look(versions[hi]) == good:
        return Boundary(good, versions[hi], None, None, list(seen.items()))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if look(versions[mid]) == good:
            lo = mid
        else:
            hi = mid
    return Boundary(good, versions[lo], versions[hi], look(versions[hi]), list(seen.items()))


def record_of(payload: Mapping[str, Any], check: Check) -> Mapping[str, Any] | None:
    """The record of ``check`` in a results payload, if it has one."""
    return next((r for r in payload.get("results") or [] if Check.of(r) == check), None)


class CheckRunner:
    """Runs one check in a release's environment (cached) and keeps each release's results file."""

    def __init__(self, target: Target, check: Check, out_dir: Path, run_args: Sequence[str],
                 cache: Path | None = None, index_args: Sequence[str] = ()) -> None:
        self.target, self.check, self.out_dir = target, check, out_dir
        self.run_args, self.cache, self.index_args = list(run_args), cache, list(index_args)

    def outcome(self, version: str) -> str:
        """The check's outcome on ``version`` (``absent``: the release did not run it)."""
        rec = self.record(version)
        return outcome(rec) if rec is not None else ABSENT

    def record(self, version: str) -> Mapping[str, Any] | None:
        path = results_path(self.out_dir, self.target, version)
        if not path.is_file():
            env = release_env(self.target.requirements(version), [self.target.module], cache=self.cache,
                              index_args=self.index_args)
            with tempfile.TemporaryDirectory() as tmp:
                ids = Path(tmp) / "ids.json"
                ids.write_text(json.dumps([f"x::{self.check.id}"]), encoding="utf-8")
                # the plugin's own option (after --) selects exactly this check, whatever the profile
                run_in_env(env, self.target.framework, path,
                           ["--profile", "full", "--no-probes", "-n", "0", *self.run_args, "--", "--only-checks", str(ids)])
        if not path.is_file():
            return None
        return record_of(read_results(path), self.check)
