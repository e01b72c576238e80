"""Hardening fuzz: mutated copies of the committed case files never make loading trace back or
lose a file. Each example loads one of cases/**/*.yaml, changes values, keys and types at random
places of the document, dumps it back to YAML and loads it with ``load_file`` / ``load_cases``:
every file yields cases or located problems, and a problem is never an internal error."""

from __future__ import annotations

import copy
import math

import yaml
from hypothesis import given
from hypothesis import strategies as st

from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from tests.conftest import ROOT, document_slots, mutate_slot

DOCS = {p.relative_to(ROOT).as_posix(): yaml.safe_load(p.read_text())
        for p in sorted((CASES_DIR).rglob("*.yaml"))}

# The shapes of trouble seen in hostile case files: integral floats, overflow, non-finite numbers, wrong
# types, words for numbers, a final line break, huge ranks, empty and ragged containers.
TRICKY = st.one_of(
    st.sampled_from([2.0, 1.0, 0.5, -1, 0, 1, 3, 10**400, -(10**400), 2**63, 10**20, 30_000_000,
                     math.nan, math.inf, -math.inf, 1e308, -1e308, True, False, None, "", "abc",
                     "two", "x\n", "depthwise", "cauchy", [], {}, [1.5], [[1, 2], [3]], [0], [-2, 3],
                     {"a": 1}, [10**400], ["abc"], [math.inf], [1, 2, 3, 4, 5, 6, 7, 8, 9]]),
    st.integers(-5, 12), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.lists(st.integers(-3, 9), max_size=6),
)
KEYS = st.sampled_from(["id", "input", "weight", "bias", "values", "random", "shape", "stride", "padding",
                        "output_padding", "dilation", "groups", "expected", "error", "seed", "low", "high",
                        "std", "mean", "distribution", "grid", "fixed", "rank", "tags", "dtypes", "defaults",
                        "cases", "sweeps", "tolerance", "frameworks", "kernel", "spatial", "bogus"])


@st.composite
def mutated_documents(draw):
    name = draw(st.sampled_from(sorted(DOCS)))
    doc = copy.deepcopy(DOCS[name])
    for _ in range(draw(st.integers(1, 4))):
        places = document_slots(doc)
        if not places:
            break
        parent, key = places[draw(st.integers(0, len(places) - 1))]
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "rename", "wrap", "nest"]))
        mutate_slot(draw, parent, key, op, TRICKY, KEYS)
    return name, doc


@given(mutated_documents())
def test_mutated_case_files_never_trace_back_or_vanish(tmp_path_factory, example):
    name, doc = example
    path = tmp_path_factory.mktemp("fuzz") / name.replace("/", "_")
    path.write_text(yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False))
    result = load_cases([path])  # load_file underneath; must not raise
    assert result.files == [str(path)]
    assert result.cases or result.problems, f"{name}: the file yielded neither cases nor problems"
    internal = [str(p) for p in result.problems if "internal error" in p.message]
    assert not internal, internal
    for p in result.problems:
        assert p.file == str(path) and p.message
    for c in result.cases[:20]:  # what validates can be generated (literal or small random tensors)
        for t in (c.input, c.weight, c.bias):
            if t is not None and (t.values is not None or math.prod(t.shape) <= 10_000):
                t.generate()
