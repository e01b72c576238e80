"""Release comparison of two results files, matched by (case, adapter, api, device, dtype).

Regressions: a passing (or rejected / xfail-as-expected) check that now fails, errors or
crashes; a check that became unsupported; a still-passing check whose max error grew by more
than ``error_growth`` x its tolerance (a precision regression that has not yet crossed the
line); a check of the base run missing from the new run (listed as disappeared too: a check
that no longer runs is never a pass); known disagreements seen through: an ``xfail`` in both runs
whose underlying outcome changed (a refusal that became wrong values, a wrong shape that became a
crash), and an ``unsupported`` in both runs with another refusal. Improvements are the reverse. Checks present in the new
file only are listed as appeared. A new run that is incomplete (``complete: false``) or holds
no checks cannot pass a comparison: ``run_problems`` says why.
"""

from __future__ import annotations

from typing import Any

from convt_conformance.model.check_id import Check
from convt_conformance.model.outcome import record_outcome
from convt_conformance.model.record import CheckRecord, as_records
from convt_conformance.model.status import Status
from convt_conformance.model.terminal import printable

# what a check observed besides its status: compared for every status (run-to-run nondeterminism)
_OBSERVED = ("max_abs_err", "max_rel_err", "max_ulp", "mismatched", "shape", "failure_kind")
GOOD = tuple(s for s in Status if s.good)  # pass, rejected, xpass (convt_conformance/model/status.py)
BAD = tuple(s for s in Status if s.failing)  # fail, error, accepted-invalid, crash
_WAS_NOT_GOOD = (*BAD, Status.XFAIL, Status.UNSUPPORTED)
_WAS_NOT_BAD = (*GOOD, Status.XFAIL, Status.UNSUPPORTED)


def _err_ratio(rec: CheckRecord) -> float | None:
    tol = (rec.tolerance or {}).get("max")
    err = rec.max_abs_err
    if tol is None or err is None or isinstance(err, str):
        return None
    return float(err) / float(tol) if tol else (0.0 if err == 0 else float("inf"))


def _by_check(payload: dict[str, Any], device: str | None) -> dict[Check, CheckRecord]:
    return {r.check: r for r in as_records(payload["results"]) if device is None or r.device == device}


def compare_results(base: dict[str, Any], new: dict[str, Any], error_growth: float = 0.5,
                    device: str | None = None) -> dict[str, Any]:
    """Classify every matched check; see the module docstring. ``device``: compare only the
    checks run on that device (``cpu`` / ``gpu``), e.g. a GPU-only rerun against a full run."""
    b, n = _by_check(base, device), _by_check(new, device)
    out: dict[str, Any] = {"regressions": [], "improvements": [], "appeared": [], "disappeared": [],
                           "changed": [], "unchanged": []}
    for key in sorted(set(b) | set(n)):
        if key not in b:
            rn = n[key]
            out["appeared"].append({"key": list(key), "new": rn.status, "message": rn.message})
            continue
        rb = b[key]
        if key not in n:
            out["disappeared"].append({"key": list(key), "base": rb.status})
            out["regressions"].append({"key": list(key), "base": rb.status, "message": "",
                                       "base_err": rb.max_abs_err, "new_err": None,
                                       "why": f"disappeared ({rb.status} in the base run, absent from the new one)"})
            continue
        rn = n[key]
        sb, sn = rb.status, rn.status
        entry: dict[str, Any] = {"key": list(key), "base": sb, "new": sn, "message": rn.message,
                                 "base_err": rb.max_abs_err, "new_err": rn.max_abs_err}
        ob, on = record_outcome(rb), record_outcome(rn)
        if sb is not Status.UNSUPPORTED and sn is Status.UNSUPPORTED:
            entry["why"] = "newly unsupported"
            out["regressions"].append(entry)
        elif sb is sn is Status.XFAIL and ob != on:
            # a known disagreement seen through: a refusal that became wrong values, a wrong shape
            # that became a crash is a regression, not "unchanged"
            entry["why"] = f"xfail, but the framework's outcome changed: {ob} -> {on}"
            out["regressions"].append(entry)
        elif sb is sn is Status.UNSUPPORTED and (rb.message or "") != (rn.message or ""):
            entry["why"] = "unsupported, but with another refusal"
            out["regressions"].append(entry)
        elif sb in _WAS_NOT_BAD and sn in BAD:
            entry["why"] = f"{sb} -> {sn}"
            out["regressions"].append(entry)
        elif sb in _WAS_NOT_GOOD and sn in GOOD and sb != sn:
            entry["why"] = f"{sb} -> {sn}"
            out["improvements"].append(entry)
        elif sb is sn is Status.PASS:
            rb_ratio, rn_ratio = _err_ratio(rb), _err_ratio(rn)
            if rb_ratio is not None and rn_ratio is not None and rn_ratio - rb_ratio > error_growth:
                entry["why"] = (f"error grew from {rb_ratio:.3g} to {rn_ratio:.3g} of the tolerance "
                                f"(limit +{error_growth:g})")
                out["regressions"].append(entry)
            elif rb.max_abs_err != rn.max_abs_err:
                entry["why"] = "error changed within the allowed growth"
                out["changed"].append(entry)
            else:
                out["unchanged"].append(entry)
        elif sb != sn:
            entry["why"] = f"{sb} -> {sn}"
            out["changed"].append(entry)
        elif any(rb[f] != rn[f] for f in _OBSERVED):
            # same status, different observation (a failing or known-failing check whose error or
            # message moved): not a regression, but `--exact` (nondeterminism) must see it
            entry["why"] = f"{sb}, but " + ", ".join(f for f in _OBSERVED if rb[f] != rn[f]) + " changed"
            out["changed"].append(entry)
        else:
            out["unchanged"].append(entry)
    out["base_env"] = base.get("environment", {})
    out["new_env"] = new.get("environment", {})
    out["run_problems"] = run_problems(base, new, len(n), device)
    return out


def run_problems(base: dict[str, Any], new: dict[str, Any], n_new: int, device: str | None = None) -> list[str]:
    """Why the new run cannot pass any comparison (incomplete, or no checks), and a note when the
    base run is incomplete (its missing checks cannot be compared)."""
    out = []
    if new.get("complete") is not True:
        out.append("the new run is incomplete (complete: false): an interrupted or partial run is never a pass")
    if n_new == 0:
        out.append("the new run holds no checks" + (f" on device {device}" if device else ""))
    if base.get("complete") is not True:
        out.append("note: the base run is incomplete (complete: false); checks it lacks are not compared")
    return out


def refusals(comp: dict[str, Any]) -> list[str]:
    """The run problems that make a comparison fail (the notes aside)."""
    return [p for p in comp.get("run_problems", []) if not p.startswith("note:")]


def run_to_run_differences(comp: dict[str, Any]) -> list[dict[str, Any]]:
    """For two runs of the same build (nondeterminism): every check whose status or error
    differs in either direction, or that ran in one run only; a deterministic pair has none."""
    rows = comp["regressions"] + comp["improvements"] + comp["changed"] + comp["appeared"] + comp["disappeared"]
    return list({tuple(e["key"]): e for e in rows}.values())


def format_comparison(comp: dict[str, Any], exact: bool = False) -> str:
    """Plain-text summary, regressions first (``exact``: list every changed check too). Every line
    holds text of the results files (ids, messages, framework versions): each is
    :func:`convt_conformance.model.terminal.printable`, so a control character or a line break in
    a file prints escaped, on its own line."""
    lines = [
        f"regressions: {len(comp['regressions'])}, improvements: {len(comp['improvements'])}, "
        f"appeared: {len(comp['appeared'])}, disappeared: {len(comp['disappeared'])}, "
        f"changed: {len(comp['changed'])}, unchanged: {len(comp['unchanged'])}",
        f"base frameworks: {comp['base_env'].get('frameworks')}",
        f"new  frameworks: {comp['new_env'].get('frameworks')}",
    ]
    lines += [f"!! {p}" for p in comp.get("run_problems", [])]
    titles = ("regressions", "improvements", "changed", "appeared", "disappeared") if exact else \
        ("regressions", "improvements", "appeared", "disappeared")
    for title in titles:
        rows = comp[title]
        if rows:
            lines.append(f"-- {title} --")
            for e in rows[:200]:
                k = e["key"]
                lines.append(f"  {k[0]} [{k[1]}.{k[2]}-{k[3]}-{k[4]}]: {e.get('why', e.get('new', e.get('base')))}"
                             + (f" ({e['message'][:160]})" if e.get("message") and title == "regressions" else ""))
            if len(rows) > 200:
                lines.append(f"  ... {len(rows) - 200} more")
    return "\n".join(printable(line) for line in lines)
