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


def _with_frameworks(requested, unavailable):
    return {**_payload("pass"), "selection": {"requested_frameworks": list(requested)},
            "environment": {"unavailable": dict(unavailable)}}


def test_a_requested_framework_that_cannot_run_is_not_clean_and_named():
    why = "the worker setting it up (import, configure) died: Fatal Python error: Segmentation fault"
    v = run_verdict(_with_frameworks(["numpy", "torch"], {"torch": why}))
    assert not v.clean and v.exit_code == 1 and v.badge == "FRAMEWORK UNAVAILABLE"
    assert v.unavailable == {"torch": why} and v.skipped == {}
    assert v.line() == f"verdict: NOT CLEAN: 1 requested framework(s) cannot run: torch ({why})"


def test_a_run_of_every_installed_framework_lists_what_it_skipped():
    v = run_verdict(_with_frameworks([], {"jax": "jax is not installed", "torch": "died setting up"}))
    assert v.clean and v.exit_code == 0 and v.unavailable == {}
    assert v.line() == "verdict: CLEAN (1 checks, no unexpected result; skipped (not available here): jax, torch)"
    # a file written before `requested_frameworks` existed reads as such a run
    old = {**_payload("pass"), "environment": {"unavailable": {"jax": "jax is not installed"}}}
    assert run_verdict(old).clean and "skipped (not available here): jax" in run_verdict(old).line()


def test_a_merge_keeps_a_requested_framework_that_no_input_ran():
    from convt_conformance.results.merge import merge_results

    why = "setting it up did not finish within 180 s"
    a = {**_with_frameworks(["numpy", "torch"], {"torch": why}),
         "results": [{"case": "c", "adapter": "numpy", "api": "recipe", "device": "cpu", "dtype": "float32",
                      "status": "pass"}]}
    a["environment"]["frameworks"] = {"numpy": "2.3", "torch": "2.13.0"}  # installed, yet it could not run
    b = {**_with_frameworks([], {}), "results": [{"case": "d", "adapter": "numpy", "api": "recipe", "device": "cpu",
                                                  "dtype": "float32", "status": "pass"}]}
    merged = merge_results([b, a], ["b.json", "a.json"])
    assert merged["environment"]["unavailable"] == {"torch": why}
    assert merged["selection"]["requested_frameworks"] == ["numpy", "torch"]
    assert not run_verdict(merged).clean and "torch" in run_verdict(merged).unavailable
