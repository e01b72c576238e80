"""Run profiles (convt_conformance/loading/profiles.yaml) and shards: what runs, deterministically."""

from __future__ import annotations

import pytest

from convt_conformance.adapters.registry import BUILTIN
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.features import case_features
from convt_conformance.loading.profiles import ProfileError, Shard, column, in_subset, load_profile, select, shard_of
from convt_conformance.run.plan import plan_table, planned_checks

CASES = [str(CASES_DIR)]


@pytest.fixture(scope="module")
def checks():
    checks, problems = planned_checks(CASES, list(BUILTIN))
    assert not problems
    return checks


def test_full_runs_everything(checks):
    assert len(select(load_profile("full"), checks)) == len(checks)


@pytest.mark.parametrize("name", ["quick", "default"])
def test_every_column_covers_every_feature_dtype_pair_it_has(checks, name):
    """Coverage of the stratified plans: every column runs, and no column whose rule asks for
    cover loses a feature x dtype pair its cases show (``cover: rows``: a feature or a dtype), within
    the dtypes and the subset the rule keeps."""
    profile = load_profile(name)
    table = plan_table(profile, checks)
    assert {r["column"] for r in table} == {column(c) for c in checks}
    for r in table:
        assert r["selected"] > 0, r
        sel = profile.rule_for(r["column"]).select
        if sel == "all" or (isinstance(sel, dict) and sel.get("cover")):
            kept = set((sel.get("dtypes") or []) if isinstance(sel, dict) else [])
            rows = isinstance(sel, dict) and sel.get("cover") == "rows"  # each feature, each dtype once
            mine = [c for c in checks if column(c) == r["column"] and (not kept or c.dtype in kept)
                    and (not isinstance(sel, dict) or "within" not in sel or in_subset(c.case, sel["within"]))]
            shown = ({f for c in mine for f in case_features(c.case)} | {f"dtype {c.dtype}" for c in mine} if rows
                     else {f"{f}/{c.dtype}" for c in mine for f in case_features(c.case)})
            missing = [u for u in r["rows_uncovered" if rows else "uncovered"] if u in shown]
            assert missing == [], r


def test_quick_is_small_and_default_keeps_cheap_columns_whole(checks):
    quick, default = select(load_profile("quick"), checks), select(load_profile("default"), checks)
    assert len(quick) < len(checks) / 10
    for col in ("torch.conv_transpose2d", "tensorflow.conv2d_transpose", "onnx.ort.ConvTranspose"):
        assert sum(column(c) == col for c in default) == sum(column(c) == col for c in checks)
    jax = [c for c in default if c.adapter_name == "jax"]
    assert 0 < len(jax) < sum(c.adapter_name == "jax" for c in checks)


def test_selection_is_deterministic_and_the_same_cases_in_every_column(checks):
    p = load_profile("default")
    a = [(c.case.id, column(c), c.dtype) for c in select(p, checks)]
    b = [(c.case.id, column(c), c.dtype) for c in select(p, list(reversed(checks)))]
    assert sorted(a) == sorted(b)
    jax_ct = {(cid, dt) for cid, col, dt in a if col == "jax.conv_transpose"}
    jax_cgd = {(cid, dt) for cid, col, dt in a if col == "jax.conv_general_dilated"}
    both = {(c.case.id, c.dtype) for c in checks if c.adapter_name == "jax" and c.case.groups == 1}
    assert jax_ct & both == jax_cgd & both  # same picks where both APIs apply


def test_invalid_cases_have_only_the_invalid_feature(checks):
    inv = [c for c in checks if c.case.expected_error]
    assert inv and all("invalid" in case_features(c.case) for c in inv)


def test_shards_partition_and_balance(checks):
    p = load_profile("default")
    chosen = select(p, checks)
    ids = [f"{c.case.id}[{column(c)}-{c.device}-{c.dtype}]" for c in chosen]
    shards = shard_of(p, chosen, 3, ids)
    assert set(shards) == {1, 2, 3}
    assert shards == shard_of(p, chosen, 3, ids)  # deterministic
    loads = [sum(p.cost(column(c)) for c, s in zip(chosen, shards) if s == k) for k in (1, 2, 3)]
    assert max(loads) - min(loads) <= max(p.cost(column(c)) for c in chosen)  # LPT bound


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2"])
def test_bad_shard_is_refused(text):
    with pytest.raises(ProfileError, match="--shard"):
        Shard.parse(text)


def test_unknown_profile_and_bad_rule_are_refused(tmp_path):
    with pytest.raises(ProfileError, match="no profile 'nope' \\(known: full, default, quick\\)"):
        load_profile("nope")
    bad = tmp_path / "p.yaml"
    bad.write_text("profiles:\n  x:\n    rules:\n      - {columns: '*', select: {strata: -1}}\n")
    with pytest.raises(ProfileError, match=r"profiles.x.rules\[0\].select.strata"):
        load_profile("x", bad)


def test_cover_rows_keeps_every_feature_and_dtype_with_fewer_checks(checks, tmp_path):
    f = tmp_path / "profiles.yaml"
    f.write_text("profiles:\n"
                 "  pairs: {rules: [{columns: '*', select: {strata: 0, cover: true}}]}\n"
                 "  rows: {rules: [{columns: '*', select: {strata: 0, cover: rows}}]}\n")
    col = [c for c in checks if column(c) == "jax.conv_transpose"]
    pairs, rows = (select(load_profile(n, f), col) for n in ("pairs", "rows"))
    assert 0 < len(rows) < len(pairs)

    def shown(cs):
        return {x for c in cs for x in case_features(c.case)}, {c.dtype for c in cs}

    assert shown(rows) == shown(col)  # each feature row and each dtype at least once
    assert {id(c) for c in rows} == {id(c) for c in select(load_profile("rows", f), list(reversed(col)))}
    f.write_text("profiles:\n  bad: {rules: [{columns: '*', select: {cover: sometimes}}]}\n")
    with pytest.raises(ProfileError, match="cover: must be true, false or rows"):
        load_profile("bad", f)
