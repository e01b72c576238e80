"""One status model, one verdict: every exit code and badge comes from convt_conformance.results.verdict."""

from __future__ import annotations

import pytest

from convt_conformance.model.status import SEVERITY, Status, status_of, worst
from convt_conformance.results.verdict import run_verdict


def test_status_properties():
    assert {s for s in Status if s.failing} == {Status.FAIL, Status.ERROR, Status.ACCEPTED_INVALID, Status.CRASH}
    assert {s for s in Status if s.unexpected} == {Status.FAIL, Status.ERROR, Status.ACCEPTED_INVALID,
                                                   Status.CRASH, Status.XPASS}
    assert not Status.UNSUPPORTED.ran and Status.XFAIL.ran
    assert set(SEVERITY) == set(Status)
    assert worst(["pass", "xfail", "unsupported"]) is Status.XFAIL
    with pytest.raises(ValueError, match="unknown status 'passed'"):
        status_of("passed")


def _payload(*statuses, complete=True, problems=(), probes=()):
    return {"complete": complete, "problems": list(problems), "convention_probes": list(probes),
            "results": [{"status": s} for s in statuses]}


@pytest.mark.parametrize("payload, clean", [
    (_payload("pass", "rejected", "unsupported", "xfail"), True),
    (_payload("pass", "xpass"), False),  # a known disagreement that now passes is unexpected
    (_payload("pass", "crash"), False),
    (_payload("pass", complete=False), False),
    (_payload(), False),  # no check ran
    (_payload("pass", problems=["cases/x.yaml: case a: stride: bad"]), False),
    (_payload("pass", probes=[{"api": "torch.conv_transpose2d", "agrees": False}]), False),
    (_payload("pass", probes=[{"api": "torch.conv_transpose2d", "agrees": True}]), True),
])
def test_run_verdict(payload, clean):
    v = run_verdict(payload)
    assert v.clean is clean
    assert v.exit_code == (0 if clean else 1)
    assert v.line().startswith("verdict: CLEAN" if clean else "verdict: NOT CLEAN")
    if not clean:
        assert v.reasons()
