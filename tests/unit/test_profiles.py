"""Run profiles (convt_conformance/loading/profiles.yaml with each framework's part,
convt_conformance/adapters/<framework>/profile.yaml) and shards: what runs, deterministically."""

from __future__ import annotations

import pytest

from convt_conformance.adapters.registry import BUILTIN
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.features import case_features
from convt_conformance.loading.profiles import (
    PROFILES_FILE,
    FrameworkPart,
    ProfileError,
    Shard,
    column,
    in_subset,
    load_profile,
    select,
    selection_digest,
    shard_of,
)
from convt_conformance.loading.yaml_io import load_yaml
from convt_conformance.model.check_id import format_check_id
from convt_conformance.run.plan import framework_parts, load_run_profile, plan_table, planned_checks

CASES = [str(CASES_DIR)]


@pytest.fixture(scope="module")
def checks():
    checks, problems = planned_checks(CASES, list(BUILTIN))
    assert not problems
    return checks


def test_full_runs_everything(checks):
    assert len(select(load_run_profile("full"), checks)) == len(checks)


@pytest.mark.parametrize("name", ["quick", "default"])
def test_every_column_covers_every_feature_dtype_pair_it_has(checks, name):
    """Coverage of the stratified plans: every column runs, and no column whose rule asks for
    cover loses a feature x dtype pair its cases show (``cover: rows``: a feature or a dtype), within
    the dtypes and the subset the rule keeps."""
    profile = load_run_profile(name)
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
    quick, default = select(load_run_profile("quick"), checks), select(load_run_profile("default"), checks)
    assert len(quick) < len(checks) / 10
    for col in ("torch.conv_transpose2d", "tensorflow.conv2d_transpose", "onnx.ort.ConvTranspose"):
        assert sum(column(c) == col for c in default) == sum(column(c) == col for c in checks)
    jax = [c for c in default if c.adapter_name == "jax"]
    assert 0 < len(jax) < sum(c.adapter_name == "jax" for c in checks)


def test_selection_is_deterministic_and_the_same_cases_in_every_column(checks):
    p = load_run_profile("default")
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
    p = load_run_profile("default")
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
        load_run_profile("nope")
    bad = tmp_path / "p.yaml"
    bad.write_text("profiles:\n  x:\n    rules:\n      - {columns: '*', select: {strata: -1}}\n")
    with pytest.raises(ProfileError, match=r"profiles.x.rules\[0\].select.strata"):
        load_run_profile("x", bad)


def test_cover_rows_keeps_every_feature_and_dtype_with_fewer_checks(checks, tmp_path):
    f = tmp_path / "profiles.yaml"
    f.write_text("profiles:\n"
                 "  pairs: {rules: [{columns: '*', select: {strata: 0, cover: true}}]}\n"
                 "  rows: {rules: [{columns: '*', select: {strata: 0, cover: rows}}]}\n")
    col = [c for c in checks if column(c) == "jax.conv_transpose"]
    pairs, rows = (select(load_run_profile(n, f), col) for n in ("pairs", "rows"))
    assert 0 < len(rows) < len(pairs)

    def shown(cs):
        return {x for c in cs for x in case_features(c.case)}, {c.dtype for c in cs}

    assert shown(rows) == shown(col)  # each feature row and each dtype at least once
    assert {id(c) for c in rows} == {id(c) for c in select(load_run_profile("rows", f), list(reversed(col)))}
    f.write_text("profiles:\n  bad: {rules: [{columns: '*', select: {cover: sometimes}}]}\n")
    with pytest.raises(ProfileError, match="cover: must be true, false, rows or triples"):
        load_run_profile("bad", f)


#: sha-256 prefix (:func:`selection_digest`) of the check ids each built-in profile selects from the
#: packaged library for the built-in frameworks: a change of a rule, of its order or of where it
#: lives that changes what runs changes these (update them with the reason when that is intended)
SELECTION_DIGESTS = {"full": ("a127b3722f9e3b82", 343953), "default": ("6c556f1e6d9a38dc", 28095),
                     "quick": ("09eeca8a11af3576", 6747)}


@pytest.mark.parametrize("name", sorted(SELECTION_DIGESTS))
def test_the_selection_of_each_profile_is_pinned(checks, name):
    from convt_conformance.adapters.keras.adapter import BACKENDS, installed_backends

    if installed_backends() != BACKENDS:  # Keras' columns are per installed backend
        pytest.skip(f"the pinned digests count Keras' columns on all of {BACKENDS}")
    chosen = select(load_run_profile(name), checks)
    ids = [format_check_id(c.case.id, c.adapter_name, c.label, c.device, c.dtype) for c in chosen]
    assert (selection_digest(ids), len(ids)) == SELECTION_DIGESTS[name]


def test_the_frameworks_parts_come_first_in_the_registrys_order():
    parts = framework_parts()
    assert [p.name for p in parts] == [n for n in BUILTIN if n in {p.name for p in parts}]
    assert {p.name for p in parts} == set(BUILTIN)  # every built-in framework ships its part
    for p in parts:
        assert p.path == p.path.parent / "profile.yaml" and p.path.parent.name == p.name
    default = load_run_profile("default")
    generic = load_profile("default", frameworks=())
    assert default.rules[-len(generic.rules):] == generic.rules
    owners = [r.columns.split(".", 1)[0] for r in default.rules[:-len(generic.rules)]]
    assert owners == sorted(owners, key=list(BUILTIN).index)  # grouped, in the registry's order
    assert default.costs[-1] == ("*", 0.01) and dict(default.setup_costs)["*"] == 1.0


def test_the_generic_profiles_name_no_framework():
    data = load_yaml(PROFILES_FILE.read_text(encoding="utf-8"))
    globs = [r["columns"] for p in data["profiles"].values() for r in p["rules"]]
    globs += [c["columns"] for c in data["costs"]] + list(data["setup_costs"])
    assert globs and all(g.startswith("*") for g in globs), globs


def _part(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return FrameworkPart(name, path)


def test_a_frameworks_part_is_assembled_before_the_files_rules(tmp_path):
    base = tmp_path / "profiles.yaml"
    base.write_text("profiles:\n  p: {rules: [{columns: '*', select: none}]}\n  q: {}\n"
                    "costs: [{columns: '*', seconds: 0.5}]\nsetup_costs: {'*': 2.0, fw: 9.0}\n", encoding="utf-8")
    part = _part(tmp_path, "fw", "subsets:\n  s: &s {tags: [a]}\n"
                 "profiles:\n  p: {rules: [{columns: 'fw.x*', select: {within: *s}}, {columns: 'fw.*', select: all}]}\n"
                 "costs: [{columns: 'fw.x', seconds: 3}]\nsetup_costs: {fw: 4.0, 'fw.[b]': 5}\n")
    p = load_profile("p", base, frameworks=[part])
    assert [r.columns for r in p.rules] == ["fw.x*", "fw.*", "*"]
    assert p.rule_for("fw.xy").select == {"within": {"tags": ["a"]}} and p.rule_for("other.x").select == "none"
    assert p.cost("fw.x") == 3.0 and p.cost("fw.y") == 0.5
    assert dict(p.setup_costs) == {"fw": 4.0, "fw.[b]": 5.0, "*": 2.0}  # the framework's own first
    assert [r.columns for r in load_profile("q", base, frameworks=[part]).rules] == []  # none for q
    assert load_profile("p", base, frameworks=()).rules == p.rules[-1:]


@pytest.mark.parametrize(("text", "message"), [
    ("profiles:\n  p: {rules: [{columns: 'other.*', select: all}]}\n", r"names its own columns only \(fw\.\*\)"),
    ("profiles:\n  p: {rules: [{columns: '*', select: all}]}\n", "names its own columns only"),
    ("costs: [{columns: 'other.*', seconds: 1}]\n", r"costs\[0\].*own columns only"),
    ("costs: [{columns: 'fw.*'}]\n", r"costs\[0\]: expected"),
    ("setup_costs: {other: 1}\n", "setup_costs.other: a framework's file names its own groups"),
    ("profiles:\n  nightly: {rules: []}\n", "profiles.nightly: no such profile"),
    ("profiles:\n  p: {description: x}\n", r"profiles.p: expected \{rules"),
    ("rules: []\n", r"unknown key\(s\) \['rules'\]"),
    ("profiles:\n  p: {rules: [{columns: 'fw.*', select: {strata: -1}}]}\n", r"fw.yaml: profiles.p.rules\[0\].select.strata"),
    ("- a list\n", "must be a mapping"),
])
def test_a_wrong_frameworks_part_is_refused_with_its_file(tmp_path, text, message):
    base = tmp_path / "profiles.yaml"
    base.write_text("profiles:\n  p: {rules: [{columns: '*', select: all}]}\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=message):
        load_profile("p", base, frameworks=[_part(tmp_path, "fw", text)])


def test_a_profiles_file_of_ones_own_is_complete_in_itself(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("profiles:\n  default: {rules: [{columns: '*', select: none}]}\n", encoding="utf-8")
    p = load_run_profile("default", mine)
    assert [r.columns for r in p.rules] == ["*"] and p.costs == () and p.setup_costs == ()
