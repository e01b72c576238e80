"""The verdict of a run: the one function that decides ``conformance run``'s exit code, the
report's badge and summary, and (through the exit code) ``scripts/gpu.sh``'s outcome.

A run is clean when it is complete, has no case-file or known-disagreements problem, no
convention probe disagrees with its adapter's declaration, no check has an unexpected
status (:attr:`convt_conformance.model.status.Status.unexpected`: fail, error, accepted-invalid, crash,
xpass), and every framework named in ``--frameworks`` could run (the results file's
``selection.requested_frameworks``; one that is not installed, fails to import, or dies or hangs
while setting up is in ``environment.unavailable``). A run given no ``--frameworks`` (every
installed one) may leave out a framework that cannot run; the verdict lists those as skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from convt_conformance.model.record import CheckRecord, as_records

EXIT_CLEAN = 0
EXIT_UNCLEAN = 1


@dataclass
class Verdict:
    """Why a run is or is not clean (every list empty and ``complete``: clean)."""

    complete: bool
    checks: int
    unexpected: list[CheckRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    probe_disagreements: list[dict[str, Any]] = field(default_factory=list)
    #: frameworks named in ``--frameworks`` that cannot run, with why: the run is not clean
    unavailable: dict[str, str] = field(default_factory=dict)
    #: frameworks a run of every installed framework left out, with why: listed, still clean
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return (self.complete and self.checks > 0 and not self.unexpected and not self.problems
                and not self.probe_disagreements and not self.unavailable)

    @property
    def exit_code(self) -> int:
        return EXIT_CLEAN if self.clean else EXIT_UNCLEAN

    @property
    def badge(self) -> str:
        """One word for the report's header."""
        if not self.complete:
            return "INCOMPLETE run"
        if self.unavailable and not (self.unexpected or self.problems or self.probe_disagreements):
            return "FRAMEWORK UNAVAILABLE"
        return "clean run" if self.clean else "UNEXPECTED results"

    def reasons(self) -> list[str]:
        """Human-readable lines, one per reason the run is not clean."""
        out = []
        if not self.complete:
            out.append("the run is incomplete: not every collected check has a record")
        if self.unavailable:
            out.append(f"{len(self.unavailable)} requested framework(s) cannot run: "
                       + "; ".join(f"{name} ({why})" for name, why in sorted(self.unavailable.items())))
        if self.checks == 0:
            out.append("no check ran")
        if self.unexpected:
            by = Counter(r.status.value for r in self.unexpected)
            out.append(f"{len(self.unexpected)} unexpected result(s): "
                       + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
        if self.problems:
            out.append(f"{len(self.problems)} case-file or known-disagreements problem(s)")
        if self.probe_disagreements:
            out.append(f"{len(self.probe_disagreements)} convention probe(s) disagree with their adapter: "
                       + ", ".join(p.get("api", "?") for p in self.probe_disagreements))
        return out

    def line(self) -> str:
        """The last line a run prints."""
        skipped = (f"; skipped (not available here): {', '.join(sorted(self.skipped))}"
                   if self.skipped else "")
        if self.clean:
            return f"verdict: CLEAN ({self.checks} checks, no unexpected result{skipped})"
        return "verdict: NOT CLEAN: " + "; ".join(self.reasons()) + skipped


def run_verdict(payload: dict[str, Any]) -> Verdict:
    """The verdict of a results payload (as written by the run, or read from a results file)."""
    results = as_records(payload.get("results") or [])
    unavailable = {str(k): str(v) for k, v in ((payload.get("environment") or {}).get("unavailable") or {}).items()}
    requested = set((payload.get("selection") or {}).get("requested_frameworks") or ())
    return Verdict(
        complete=bool(payload.get("complete")),
        checks=len(results),
        unexpected=[r for r in results if r.status.unexpected],
        problems=list(payload.get("problems") or []),
        probe_disagreements=[p for p in payload.get("convention_probes") or [] if not p.get("agrees")],
        unavailable={k: v for k, v in unavailable.items() if k in requested},
        skipped={k: v for k, v in unavailable.items() if k not in requested},
    )


def comparison_exit_code(comp: dict[str, Any], refused: list[str], exact: bool) -> int:
    """``conformance compare``'s exit code: unclean (1) when the new run is refused (incomplete,
    empty), has a regression (a disappeared check counts as one), or, with ``exact`` (two runs of
    one build), differs from the base in any check at all."""
    from convt_conformance.results.regression import run_to_run_differences

    if refused:
        return EXIT_UNCLEAN
    bad = run_to_run_differences(comp) if exact else comp["regressions"]
    return EXIT_UNCLEAN if bad else EXIT_CLEAN
