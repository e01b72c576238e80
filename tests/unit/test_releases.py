"""Releases as an axis, without the network: which releases install here, which are chosen, the
release matrix of recorded results, and the bisection's search."""

from __future__ import annotations

import math

import pytest
from packaging.version import Version

from convt_conformance.model.check_id import Check
from convt_conformance.releases.bisect import bisect_outcomes
from convt_conformance.releases.index import ReleaseIndexError, between, choose, installable_versions
from convt_conformance.releases.target import resolve_target
from convt_conformance.results.release_matrix import ABSENT, outcome, release_matrix, transitions


def _wheel(name: str, yanked: bool = False, requires_python: str | None = None) -> dict:
    return {"filename": name, "yanked": yanked, "requires_python": requires_python}


FILES = {
    "1.0.0": [_wheel("fw-1.0.0-py3-none-any.whl")],
    "1.1.0": [_wheel("fw-1.1.0-py3-none-any.whl", yanked=True)],  # yanked: not offered
    "1.2.0": [{"filename": "fw-1.2.0.tar.gz", "yanked": False}],  # sdist only: not built here
    "1.3.0rc1": [_wheel("fw-1.3.0rc1-py3-none-any.whl")],  # a pre-release
    "1.3.0": [_wheel("fw-1.3.0-cp27-cp27m-win32.whl")],  # no wheel for this interpreter
    "1.4.0": [_wheel("fw-1.4.0-cp27-cp27m-win32.whl"), _wheel("fw-1.4.0-py3-none-any.whl")],
    "2.0.0": [_wheel("fw-2.0.0-py3-none-any.whl", requires_python=">=3.8")],
    "2.1.0": [_wheel("fw-2.1.0-py3-none-any.whl", requires_python=">=4")],  # no wheel for this Python
    "2.2.0": [_wheel("fw-2.2.0-py3-none-any.whl", requires_python="not a specifier")],
    "not-a-version": [_wheel("fw-x-py3-none-any.whl")],
}


def test_only_releases_with_a_wheel_for_this_interpreter_are_installable():
    assert installable_versions(FILES) == [Version("1.0.0"), Version("1.4.0"), Version("2.0.0")]
    assert Version("1.3.0rc1") in installable_versions(FILES, include_prereleases=True)


def test_choose_last_spec_and_listed():
    versions = installable_versions(FILES)
    assert choose(versions, last=2) == [Version("1.4.0"), Version("2.0.0")]
    assert choose(versions, spec=">=1.1,<2") == [Version("1.4.0")]
    assert choose(versions, spec=">=1", last=1) == [Version("2.0.0")]
    assert choose(versions, listed=["2.0.0", "1.0.0"]) == [Version("1.0.0"), Version("2.0.0")]
    with pytest.raises(ReleaseIndexError, match="1.2.0"):
        choose(versions, listed=["1.2.0"])
    assert between(versions, "2.0.0", "1.0.0") == versions


def test_a_distribution_names_its_framework():
    assert resolve_target("onnxruntime").framework == "onnx"
    t = resolve_target("onnx")
    assert (t.framework, t.distribution) == ("onnx", "onnxruntime")
    assert resolve_target("onnx", "onnx").distribution == "onnx"
    assert resolve_target("jax").requirements("0.9.2") == ["jax==0.9.2", "jaxlib==0.9.2"]
    assert resolve_target("keras").requirements("3.12.4") == ["keras==3.12.4"]
    with pytest.raises(ValueError, match="neither a framework"):
        resolve_target("nosuchthing")


def _rec(case: str, status: str, kind: str | None = None, underlying: str | None = None, msg: str = "") -> dict:
    r = {"case": case, "adapter": "fw", "api": "conv", "device": "cpu", "dtype": "float32", "status": status,
         "message": msg}
    if kind:
        r["failure_kind"] = kind
    if underlying:
        r["underlying_status"] = underlying
    return r


def test_outcome_sees_through_known_disagreements():
    assert outcome(_rec("a", "xfail", "value", underlying="fail")) == "fail/value"
    assert outcome(_rec("a", "xfail", underlying="error")) == "error"
    assert outcome(_rec("a", "fail", "shape")) == "fail/shape"
    assert outcome(_rec("a", "xpass", underlying="pass")) == "pass"


def test_the_matrix_keeps_the_checks_that_changed_with_their_first_and_last_release():
    payloads = [
        {"results": [_rec("a", "pass"), _rec("b", "fail", "value", msg="off by 1"), _rec("c", "pass")]},
        {"results": [_rec("a", "pass"), _rec("b", "xfail", "value", underlying="fail"), _rec("c", "error")]},
        {"results": [_rec("a", "pass"), _rec("b", "pass"), _rec("c", "error")]},
        {"results": [_rec("a", "pass"), _rec("c", "fail", "shape")]},
    ]
    m = release_matrix("fw", "fw-dist", ["1", "2", "3", "4"], payloads)
    assert m.same == 1 and m.checks_per_release == [3, 3, 3, 2]
    rows = {r.check.case: r for r in m.rows}
    assert set(rows) == {"b", "c"}
    assert rows["b"].outcomes == ["fail/value", "fail/value", "pass", ABSENT]
    assert rows["b"].spans == {"fail/value": ("1", "2")}
    assert rows["b"].reasons["fail/value"] == "off by 1"
    assert rows["c"].spans == {"error": ("2", "3"), "fail/shape": ("4", "4")}
    t = {(x.before, x.after, x.from_outcome, x.to_outcome): x.checks for x in transitions(m)}
    assert t[("2", "3", "fail/value", "pass")] == [Check("b", "fw", "conv", "cpu", "float32")]
    assert ("1", "2", "pass", "error") in t and ("3", "4", "error", "fail/shape") in t


@pytest.mark.parametrize("n, first_bad", [(2, 1), (3, 1), (3, 2), (9, 5), (17, 16), (17, 1)])
def test_bisect_finds_the_first_release_with_another_outcome(n, first_bad):
    versions = [f"1.{i}" for i in range(n)]
    calls: list[str] = []

    def outcome_of(v: str) -> str:
        calls.append(v)
        return "fail/value" if versions.index(v) >= first_bad else "pass"

    b = bisect_outcomes(versions, outcome_of)
    assert (b.last_good, b.first_bad, b.good_outcome, b.bad_outcome) == \
        (versions[first_bad - 1], versions[first_bad], "pass", "fail/value")
    assert len(calls) == len(set(calls)) <= 2 + math.ceil(math.log2(n))


def test_bisect_says_when_nothing_changed():
    b = bisect_outcomes(["1", "2", "3"], lambda v: "pass")
    assert b.first_bad is None and b.last_good == "3"
    with pytest.raises(ValueError):
        bisect_outcomes(["1"], lambda v: "pass")


def test_compare_sees_through_known_disagreements():
    from convt_conformance.results.regression import compare_results

    def payload(*recs: dict) -> dict:
        return {"complete": True, "results": list(recs)}

    refusal = _rec("a", "xfail", underlying="error", msg="refused")
    values = _rec("a", "xfail", "value", underlying="fail", msg="wrong values")
    same = _rec("b", "xfail", "value", underlying="fail")
    base = payload(refusal, same, _rec("c", "unsupported", msg="not implemented: groups"))
    new = payload(values, same, _rec("c", "unsupported", msg="not implemented: dilation"))
    comp = compare_results(base, new)
    why = {tuple(e["key"])[0]: e["why"] for e in comp["regressions"]}
    assert why == {"a": "xfail, but the framework's outcome changed: error -> fail/value",
                   "c": "unsupported, but with another refusal"}
    assert [tuple(e["key"])[0] for e in comp["unchanged"]] == ["b"]
