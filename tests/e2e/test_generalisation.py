"""The profiles' coverage selection finds bugs it was not tuned on.

The mutation catalogue (mutation/site/convt_mutants) is split by family into two halves, the
families in sorted order taken alternately. A profile's coverage cases are chosen by its rules
from the case library alone (the feature model's (feature, rank, dtype) triples: `cover:
triples`); no mutant is imported before the selection is made, and the cases written against the
catalogue (tag `mutation`) get no special treatment. Then each half in turn is the hidden one:
every bug mutant of the hidden half must be killed by at least 2 distinct selected cases in
`quick` (the rule of the mutant's own column, the generic one) and 3 in `default` (the rule of
its cover-selected forward columns, JAX's), and no correct variant may be flagged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from convt_conformance.checking import check as check_mod
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import Case, load_cases
from convt_conformance.loading.profiles import select
from convt_conformance.run.plan import load_run_profile
from tests.conftest import ROOT

SITE = ROOT / "mutation" / "site"
KILLING = ("fail", "error", "accepted-invalid", "crash")
#: profile -> (the column whose rule chooses its coverage cases, distinct killing cases wanted)
PROFILES = {"quick": ("mutant.bug_flip", 2), "default": ("jax.conv_general_dilated", 3)}


@dataclass(frozen=True)
class Probe:
    """A check as the profiles see it: a case, a column and a dtype (nothing of any mutant)."""

    case: Case
    adapter_name: str
    label: str
    device: str
    dtype: str


@pytest.fixture(scope="module")
def library() -> list[Case]:
    loaded = load_cases([str(CASES_DIR)])
    assert loaded.problems == []
    return list(loaded.cases)


@pytest.fixture(scope="module")
def selections(library) -> dict[str, list[tuple[Case, str]]]:
    """Per profile, the (case, dtype) pairs its rule picks for the column named in PROFILES,
    made before the catalogue is imported."""
    assert "convt_mutants" not in sys.modules  # the selection cannot see the mutants
    out = {}
    for name, (col, _) in PROFILES.items():
        adapter, label = col.split(".", 1)
        probes = [Probe(c, adapter, label, "cpu", d) for c in library for d in c.dtypes]
        out[name] = [(p.case, p.dtype) for p in select(load_run_profile(name), probes)]
    return out


@pytest.fixture(scope="module")
def catalogue(selections) -> Iterator[tuple[Any, Any]]:
    """The plugin's modules (mutation/site on sys.path only while importing) and one adapter;
    the reference memoised per (case, dtype) meanwhile, as scripts/mutation_score.py does."""
    sys.path.insert(0, str(SITE))
    try:
        from convt_mutants import catalogue as cat
        from convt_mutants.adapter import MutantAdapter
    finally:
        sys.path.remove(str(SITE))
    original = check_mod.reference_and_magnitude
    memo: dict[Any, Any] = {}

    def cached(case, x, w, b):  # type: ignore[no-untyped-def]
        key = (case.id, x.dtype.str, x.tobytes(), w.tobytes(), None if b is None else b.tobytes())
        if key not in memo:
            memo[key] = original(case, x, w, b)
        return memo[key]

    check_mod.reference_and_magnitude = cached
    try:
        yield cat, MutantAdapter()
    finally:
        check_mod.reference_and_magnitude = original


def halves(cat: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The bug families, sorted, taken alternately into two halves (deterministic)."""
    families = sorted({m.family for m in cat.MUTANTS if m.kind == "bug"})
    return frozenset(families[0::2]), frozenset(families[1::2])


@pytest.fixture(scope="module")
def kills(selections, catalogue) -> dict[str, dict[str, set[str]]]:
    """Per profile, per mutant: the distinct selected cases killing (or flagging) it."""
    cat, adapter = catalogue
    out: dict[str, dict[str, set[str]]] = {}
    for name, picks in selections.items():
        killed: dict[str, set[str]] = {m.name: set() for m in cat.MUTANTS}
        for case, dtype in picks:
            for m in cat.MUTANTS:
                if case.id in killed[m.name]:
                    continue
                rec = check_mod.run_check(case, adapter, m.name, "cpu", dtype, "strict", [])
                if rec["status"] in KILLING:
                    killed[m.name].add(case.id)
        out[name] = killed
    return out


def test_the_split_is_by_family_and_covers_the_catalogue(catalogue):
    cat, _ = catalogue
    a, b = halves(cat)
    assert a and b and not a & b
    assert a | b == {m.family for m in cat.MUTANTS if m.kind == "bug"}
    assert halves(cat) == (a, b)  # deterministic
    # the families the old, catalogue-tuned quick profile missed are in the catalogue
    names = {m.name for m in cat.MUTANTS}
    assert {"bug_skip_zero_taps", "bug_reject_kernel1"} <= names


def test_the_selections_use_no_mutation_tag_and_are_small(selections, library):
    for name, picks in selections.items():
        assert picks, name
        chosen = {c.id for c, _ in picks}
        assert len(chosen) < len(library) / 2, name
    quick = load_run_profile("quick").rule_for(PROFILES["quick"][0]).select
    default = load_run_profile("default").rule_for(PROFILES["default"][0]).select
    for sel in (quick, default):
        assert sel["cover"] == "triples" and "mutation" not in sel.get("tags", [])


@pytest.mark.parametrize("hidden", [0, 1])
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_hidden_half_is_killed(kills, catalogue, profile, hidden):
    cat, _ = catalogue
    families = halves(cat)[hidden]
    want = PROFILES[profile][1]
    thin = {m.name: sorted(kills[profile][m.name]) for m in cat.MUTANTS
            if m.kind == "bug" and m.family in families and len(kills[profile][m.name]) < want}
    assert thin == {}, f"{profile}: hidden families {sorted(families)}: killed by < {want} cases: {thin}"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_no_correct_variant_is_flagged(kills, catalogue, profile):
    cat, _ = catalogue
    flagged = {m.name: sorted(kills[profile][m.name]) for m in cat.MUTANTS
               if m.kind == "correct" and kills[profile][m.name]}
    assert flagged == {}
