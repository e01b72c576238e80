"""Replayed historical bugs: the boundary `conformance bisect` found for each, replayed from the
outcomes it recorded on each release it evaluated (tests/data/replays/*.json), without the
network. The search must ask only for releases that were recorded and land on the same boundary."""

from __future__ import annotations

import json

import pytest

from convt_conformance.model.check_id import Check
from convt_conformance.releases.bisect import bisect_outcomes
from tests.conftest import DATA

REPLAYS = sorted((DATA / "replays").glob("*.json"))


def test_there_are_replays():
    assert len(REPLAYS) >= 2


@pytest.mark.parametrize("path", REPLAYS, ids=lambda p: p.stem)
def test_the_recorded_bisection_lands_on_the_boundary(path):
    r = json.loads(path.read_text())
    assert Check.parse(r["check"]) is not None
    versions = r["releases"]
    if versions.index(r["good"]) > versions.index(r["bad"]):
        versions = list(reversed(versions))
    versions = versions[versions.index(r["good"]):versions.index(r["bad"]) + 1]

    def outcome_of(v: str) -> str:
        assert v in r["recorded"], f"the search asked for {v}, which the replay did not record"
        return r["recorded"][v]

    found = bisect_outcomes(versions, outcome_of)
    assert [found.last_good, found.first_bad] == r["boundary"]
    assert found.good_outcome != found.bad_outcome and found.bad_outcome != "pass"
