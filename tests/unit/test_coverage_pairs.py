"""The feature model (convt_conformance/loading/features.py) and the case library's coverage of it:
every (feature, rank, dtype) triple a case can show is shown by at least one case of the packaged
library, and each feature means what it says on small cases written here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import Case, load_cases, load_file
from convt_conformance.loading.features import (
    DTYPE_EXCLUDED,
    FEATURES,
    RANK_EXCLUDED,
    STRATUM_FEATURES,
    case_features,
    coverage_triples,
    possible_triples,
    rule_features,
    stratum,
)
from convt_conformance.model.dtypes import DTYPE_NAMES

COVERAGE_FILE = CASES_DIR / "edge" / "coverage_pairs.yaml"


def uncovered(cases: Iterable[Case]) -> list[tuple[str, str, str]]:
    """The possible (feature, rank, dtype) triples no check of ``cases`` shows, sorted."""
    shown = {t for c in cases for d in c.dtypes for t in coverage_triples(c, d)}
    return sorted(possible_triples(DTYPE_NAMES) - shown)


@pytest.fixture(scope="module")
def library() -> list[Case]:
    loaded = load_cases([str(CASES_DIR)])
    assert loaded.problems == []
    return list(loaded.cases)


#: validity rules no case of the library breaks yet (none: the coverage cases break negative
#: output_padding, a zero kernel and zero groups in every rank). Kept exact: the test fails when a
#: rule named here gets covered.
OPEN_RULES: tuple[str, ...] = ()
OPEN = sorted((f"breaks-{r}", f"rank{k}", "float32") for r in OPEN_RULES for k in (1, 2, 3))


def test_every_possible_feature_rank_dtype_triple_is_shown_by_a_case(library):
    missing = uncovered(library)
    assert sorted(set(missing) - set(OPEN)) == [], ("uncovered (feature, rank, dtype): "
                                                    + ", ".join("/".join(t) for t in missing if t not in OPEN))
    assert missing == OPEN  # the open rules are still open (else drop them from OPEN)


def test_without_the_coverage_cases_the_holes_are_named(library):
    rest = [c for c in library if "coverage" not in c.tags]
    missing = uncovered(rest)
    # the holes the coverage cases fill: rank-3 bias, 0 x Inf, wide groups, subnormal results
    for triple in [("bias", "rank3", "float32"), ("zero-input-x-nonfinite-weight", "rank2", "float32"),
                   ("in-per-group>8", "rank3", "float16"), ("subnormal-output", "rank1", "float32"),
                   ("invalid", "rank2", "float64")]:
        assert triple in missing
    message = "uncovered (feature, rank, dtype): " + ", ".join("/".join(t) for t in missing)
    assert "bias/rank3/float32" in message


def test_the_possible_triples_leave_out_only_what_cannot_co_occur():
    triples = possible_triples(DTYPE_NAMES)
    assert ("per-axis-stride", "rank1", "float32") not in triples
    assert ("per-axis-stride", "rank2", "float32") in triples
    assert ("subnormal-output", "rank2", "float16") not in triples
    assert ("subnormal-output", "rank2", "bfloat16") in triples
    assert ("subnormal-output", "rank2", "float64") not in triples
    assert ("rank1", "rank2", "float32") not in triples and ("rank2", "rank2", "float32") in triples
    n_rank_features = 3 * len(DTYPE_NAMES)
    expected = ((len(FEATURES) - 3) * 3 * len(DTYPE_NAMES) + n_rank_features
                - len(RANK_EXCLUDED) * len(DTYPE_NAMES) - 3 * len(DTYPE_EXCLUDED) + 3 * len(rule_features()))
    assert len(triples) == expected


def _one(tmp_path: Path, body: str) -> Case:
    path = tmp_path / "c.yaml"
    path.write_text("cases:\n" + body, encoding="utf-8")
    loaded = load_file(path)
    assert loaded.problems == []
    (case,) = loaded.cases
    return case


CASE = """  - id: c
    input: {{shape: {xs}, values: {xv}}}
    weight: {{shape: {ws}, values: {wv}}}
    stride: {stride}
    expected: {{shape: {ys}}}
"""


@pytest.mark.parametrize(("xv", "wv", "stride", "ys", "want", "not_want"), [
    # NaN at input 1 meets the zero tap at output 3 alone (stride 2)
    ("[1, .nan, 2]", "[1, 0, 1]", 2, "[1, 1, 7]", "nonfinite-input-x-zero-weight", "zero-input-x-nonfinite-weight"),
    # stride 1, NaN everywhere: every output the zero tap reaches also gets NaN x 1
    ("[.nan, .nan, .nan]", "[1, 0, 1]", 1, "[1, 1, 5]", None, "nonfinite-input-x-zero-weight"),
    # zero input 0 on the Inf tap: output 0 is NaN through 0 x Inf alone
    ("[0, 1, 1]", "[.inf, 1, 1]", 2, "[1, 1, 7]", "zero-input-x-nonfinite-weight", "nonfinite-input-x-zero-weight"),
    # the zero input's outputs are also reached by 1 x Inf (stride 1 overlaps): not alone
    ("[1, 0, 1]", "[.inf, .inf]", 1, "[1, 1, 4]", None, "zero-input-x-nonfinite-weight"),
])
def test_zero_times_nonfinite_features(tmp_path, xv, wv, stride, ys, want, not_want):
    n = len(xv.split(","))
    k = len(wv.split(","))
    case = _one(tmp_path, CASE.format(xs=f"[1, 1, {n}]", xv=xv, ws=f"[1, 1, {k}]", wv=wv, stride=stride, ys=ys))
    feats = case_features(case)
    assert "non-finite" in feats
    if want:
        assert want in feats
    assert not_want not in feats


def test_geometry_features_on_a_written_case(tmp_path):
    case = _one(tmp_path, """  - id: g
    input: {random: {shape: [0, 18, 2, 3], distribution: uniform, seed: 1}}
    weight: {random: {shape: [18, 1, 1, 3], distribution: uniform, seed: 2}}
    bias: {values: [1, 2]}
    groups: 2
    stride: [3, 2]
    dilation: [1, 2]
    padding: [[1, 0], [0, 0]]
    output_padding: [2, 1]
    expected: {shape: [0, 2, 5, 10]}
""")
    feats = case_features(case)
    assert {"kernel1", "stride>kernel", "output-padding-at-bound", "per-axis-stride", "per-axis-dilation",
            "per-axis-padding", "grouped-bias", "in-per-group>8", "empty-batch", "groups>1", "bias",
            "asymmetric-padding", "rank2"} <= feats
    assert not feats & {"single-batch", "batch>1", "depthwise", "subnormal-output", "non-finite"}
    # the stratum is made of the structural features only
    assert set(stratum(case, "float32")[:-1]) == feats & set(STRATUM_FEATURES)
    assert stratum(case, "float32")[-1] == "float32"


def test_output_padding_below_its_bound_is_not_at_it(tmp_path):
    case = _one(tmp_path, """  - id: op
    input: {random: {shape: [1, 1, 3], distribution: uniform, seed: 1}}
    weight: {random: {shape: [1, 1, 2], distribution: uniform, seed: 2}}
    stride: 3
    output_padding: 1
    expected: {shape: [1, 1, 9]}
""")
    feats = case_features(case)
    assert "output-padding" in feats and "output-padding-at-bound" not in feats
    assert "single-batch" in feats and "kernel1" not in feats


def test_the_coverage_cases_show_what_their_sources_say(library):
    by_id = {c.id: c for c in library if c.id.startswith("cov-")}
    assert {c.id for c in load_file(COVERAGE_FILE).cases} == set(by_id)
    assert "subnormal-output" in case_features(by_id["cov-1d-subnormal-output"])
    assert "bias" in case_features(by_id["cov-3d-bias-batch2-per-axis"])
    assert "zero-input-x-nonfinite-weight" in case_features(by_id["cov-2d-zero-on-inf-tap"])
    assert "in-per-group>8" in case_features(by_id["cov-3d-wide-group"])
    for rule, name in [("negative-output-padding", "negative-output-padding"), ("zero-kernel", "zero-kernel"),
                       ("groups-nonpositive", "zero-groups")]:
        for k in (1, 2, 3):
            assert f"breaks-{rule}" in case_features(by_id[f"cov-{k}d-invalid-{name}"])
    assert all("coverage" in c.tags for c in by_id.values())
