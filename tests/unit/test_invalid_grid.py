"""The crossed invalid grid and the rule table (README "Invalid configurations"): every generated
case breaks exactly its rule, ids are stable, and the rule patterns read real framework messages
(``tests/data/rejection_messages.yaml``) as they were recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from convt_conformance.checking.invalid_rules import classify_rejection, load_rules, rule_ids, rules_of_reasons
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases, load_file
from convt_conformance.loading.invalid_grid import BREAKERS, breaker_rule
from convt_conformance.loading.yaml_io import load_yaml
from tests.conftest import DATA

GRID_FILE = CASES_DIR / "invalid" / "invalid_grid.yaml"
GRID = load_file(GRID_FILE)
MESSAGES = load_yaml((DATA / "rejection_messages.yaml").read_text(encoding="utf-8"))
_ID = re.compile(r"^inv-(?P<breaker>[a-z-]+)-r(?P<rank>[123])-g(?P<g>\d+)-d(?P<d>\d+)-b(?P<b>[01])$")


def test_grid_loads_without_problems():
    assert GRID.problems == []
    assert len(GRID.cases) >= 150


@pytest.mark.parametrize("case", GRID.cases, ids=lambda c: c.id)
def test_each_case_breaks_exactly_its_rule(case):
    """The loader's own validation names exactly the breaker's rule, nothing else."""
    assert case.expected_error
    assert rules_of_reasons(case.invalid_reasons) == [breaker_rule(case.id, "inv")], case.invalid_reasons


def test_ids_name_rule_and_features_and_are_stable():
    assert GRID.cases
    for case in GRID.cases:
        m = _ID.match(case.id)
        assert m, case.id
        assert m["breaker"] in BREAKERS
        assert int(m["rank"]) == len(case.input.shape) - 2
        assert int(m["g"]) == case.groups
        assert (case.bias is not None) == (m["b"] == "1")
        if m["breaker"] != "zero-dilation" or int(m["rank"]) > 1:  # rank-1 zero-dilation: only axis zeroed
            assert int(m["d"]) == max(case.dilation), case.id  # the base dilation
    again = load_file(GRID_FILE)
    assert [(c.id, c.input.random["seed"]) for c in again.cases] == \
           [(c.id, c.input.random["seed"]) for c in GRID.cases]


def test_every_breaker_and_feature_is_in_the_default_grid():
    ids = [c.id for c in GRID.cases]
    for name in BREAKERS:
        assert any(i.startswith(f"inv-{name}-r") for i in ids), name
    for feature in ("-r1-", "-r2-", "-r3-", "-g1-", "-g2-", "-d1-", "-d2-", "-b0", "-b1"):
        assert any(feature in i for i in ids), feature
    # the default run (cases/) includes the grid, tagged invalid
    default = {c.id for c in load_cases([CASES_DIR]).cases if "invalid" in c.tags}
    assert set(ids) <= default


def test_trim_is_applied_and_needs_a_reason(tmp_path: Path):
    ids = {c.id for c in GRID.cases}
    assert "inv-zero-output-r2-g2-d2-b1" in ids  # bias crossed at rank 2
    assert "inv-zero-output-r3-g2-d2-b1" not in ids  # trimmed: rank 3 with bias
    assert "inv-bias-shape-r3-g2-d2-b1" in ids  # except_break keeps it
    bad = tmp_path / "g.yaml"
    bad.write_text("invalid_grids:\n  - id: g\n    break: [zero-stride]\n    grid: {rank: [1]}\n"
                   "    trim: [{rank: 1}]\n", encoding="utf-8")
    probs = load_file(bad).problems
    assert probs and any("why" in p.message and "invalid_grids" in p.key for p in probs), probs


def test_unknown_breaker_is_reported_with_file_case_and_key(tmp_path: Path):
    bad = tmp_path / "g.yaml"
    bad.write_text("invalid_grids:\n  - id: g\n    break: [zero-strid]\n    grid: {rank: [1]}\n", encoding="utf-8")
    (p,) = load_file(bad).problems
    assert p.file == str(bad) and p.case == "g" and p.key == "invalid_grids[0].break"
    assert "zero-strid" in p.message


def test_every_reason_of_the_invalid_cases_maps_to_a_rule():
    invalid = load_cases([CASES_DIR / "invalid"]).cases
    assert len(invalid) >= 20
    for case in invalid:
        rules = rules_of_reasons(case.invalid_reasons)
        assert rules and "unknown" not in rules, (case.id, case.invalid_reasons)
        assert set(rules) <= set(rule_ids())


@pytest.mark.parametrize("entry", MESSAGES["rejections"], ids=lambda e: f"{e['framework']}-{e['case']}")
def test_real_messages_are_read_as_recorded(entry):
    got = classify_rejection(entry["framework"], entry["message"], entry["breaks"])
    assert (got["kind"], got["rule_named"]) == (entry["kind"], entry["rule"])


def test_internal_failures_name_no_rule_and_validation_messages_name_one():
    kinds = {(e["framework"], e["kind"]) for e in MESSAGES["rejections"]}
    assert ("torch", "internal") in kinds  # oneDNN's memory descriptor on the grouped path
    assert all(e["rule"] is None for e in MESSAGES["rejections"] if e["kind"] == "internal")
    # a message naming another rule than the one broken is recorded as that other rule
    got = classify_rejection("torch", "RuntimeError: negative padding is not supported", ["nonpositive-stride"])
    assert got == {"rule_named": "negative-padding", "expected_rules": ["nonpositive-stride"], "kind": "validation"}
    assert classify_rejection("torch", "RuntimeError: something else", ["bias-shape"])["rule_named"] is None


def test_every_rule_has_reasons_and_framework_patterns():
    rules, internal, _ = load_rules()
    assert rules
    for rid, rule in rules.items():
        assert rule.reasons and rule.description, rid
        assert "numpy" in rule.messages, rid  # the reference's own message
    assert internal["torch"]
