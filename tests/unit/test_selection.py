"""What a run selects and how it says so: one wording for the summary, the Markdown summary and the
report header; someone's own cases run in full unless a profile is given."""

from __future__ import annotations

from convt_conformance.cli.main import build_parser, default_profile
from convt_conformance.loading.cases import load_file
from convt_conformance.model.selection import selection_line


def test_a_thinned_selection_says_how_many_of_how_many():
    line = selection_line({"profile": "default", "collected_checks": 2821, "selected_checks": 759}, 759)
    assert line == "759 of 2821 collected checks (profile default; --profile full runs all)"


def test_a_full_selection_says_so_and_names_the_shard():
    assert selection_line({"profile": "full", "collected_checks": 72, "selected_checks": 72}, 72) == \
        "72 checks, every collected check (profile full)"
    sel = {"profile": "quick", "collected_checks": 100, "selected_checks": 40, "shard": {"index": 2, "count": 4}}
    assert selection_line(sel, 10) == "10 of 100 collected checks (profile quick, shard 2/4; --profile full runs all)"


def test_own_cases_run_in_full_unless_a_profile_is_given():
    assert default_profile(["my_cases/"]) == "full"
    assert default_profile(None) == "default"
    args = build_parser().parse_args(["run", "--cases", "mine.yaml"])
    assert args.profile is None  # resolved by main(): full
    assert build_parser().parse_args(["run", "--cases", "mine.yaml", "--profile", "quick"]).profile == "quick"


def test_a_schema_problem_does_not_hide_the_semantic_ones(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("cases:\n  - id: bad-1\n    input: {shape: [1, 1, 2, 2], values: [[0, 1], [2, 3]]}\n"
                 "    weight: {shape: [1, 1, 2, 2], values: [[0, 1], [2, 3]]}\n    stride: -1\n")
    messages = [p.message for p in load_file(f).problems]
    assert any("'expected' is a required property" in m for m in messages), messages
    assert any("stride must be >= 1" in m for m in messages), messages
    assert len(messages) == 2


def test_a_case_too_malformed_to_read_further_reports_its_schema_problems_only(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("cases:\n  - id: bad-2\n    weight: 7\n")
    problems = load_file(f).problems
    assert problems and all(p.case == "bad-2" for p in problems)
