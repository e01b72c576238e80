"""Hardening, loading side: no case file lost, every failure a located problem of its file."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import yaml

from convt_conformance.cli.main import main
from convt_conformance.library import CASES_DIR
from convt_conformance.loading import cases as cases_mod
from convt_conformance.loading.cases import discover, load_cases, load_file
from convt_conformance.loading.known import load_known
from convt_conformance.loading.yaml_io import load_yaml
from convt_conformance.model.limits import fmt_count, over_limit
from tests.conftest import DATA, ROOT

BAD = DATA / "bad"
EXPECT = yaml.safe_load((DATA / "hardening_expectations.yaml").read_text())


@pytest.mark.parametrize("fname", sorted(EXPECT))
def test_bad_file_is_located_problems_and_keeps_good_cases(fname):
    """Items 1, 6, 7, 8, 13, 14: each trigger is a located problem; the file's sound cases load."""
    result = load_file(BAD / fname)
    rendered = "\n".join(map(str, result.problems))
    for case, key, text in EXPECT[fname]["problems"]:
        hit = [p for p in result.problems if p.case == case and p.key == key and text in p.message]
        assert hit, f"no problem ({case!r}, {key!r}, {text!r}) among:\n{rendered}"
    assert "internal error" not in rendered
    assert sorted(c.id for c in result.cases) == sorted(EXPECT[fname]["keeps"])


def test_validate_shows_every_file_without_traceback(capsys):
    """Item 1: `validate` reports the other files' problems too, and exits 1 without a traceback."""
    assert main(["validate", str(BAD)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fname in EXPECT:
        assert fname in err, fname
    assert "ragged_and_shapes.yaml: case cin-mismatch" in err


def test_load_file_never_raises(monkeypatch, tmp_path):
    """Item 1: the last-resort guard turns an unforeseen exception into a located problem."""
    def boom(*a, **k):
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(cases_mod, "case_from_raw", boom)
    result = load_file(CASES_DIR / "documents" / "d2l_transposed_conv.yaml", display="d2l.yaml")
    assert result.cases == [] and result.files == ["d2l.yaml"]
    assert [str(p) for p in result.problems] == ["d2l.yaml: <file>: internal error while loading: RuntimeError: unforeseen"]


def test_run_with_workers_reports_a_crashing_file(tmp_path):
    """Item 1 under xdist: a file that crashed the loader was dropped (exit 0, problems [])."""
    import json
    import subprocess
    import sys

    res = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--cases", str(BAD / "float_integers.yaml"),
                        "--frameworks", "numpy", "-n", "2", "--no-probes", "--results", str(res)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    data = json.loads(res.read_text())
    assert any("float-stride" in x and "cases[0].stride" in x for x in data["problems"]), data["problems"]
    assert {r["case"] for r in data["results"]} == {"still-fine"}


def test_size_message_of_thousands_of_axes_does_not_overflow():
    """Item 1: formatting a count with more digits than Python prints (4300) was a ValueError."""
    huge = 10 ** 6000
    assert fmt_count(huge).startswith("about 2**")
    assert "about 2**" in over_limit("elements", "elements", huge)
    assert fmt_count(12345) == "12,345"


def test_small_sweep_with_huge_rank_is_refused_fast():
    """Item 6: `fixed: {rank: 30000000}` built 30-million-axis tuples (34 s, 3.8 GB)."""
    t0 = time.perf_counter()
    result = load_file(BAD / "sweep_bad_values.yaml")
    assert time.perf_counter() - t0 < 5
    assert any(p.key == "sweeps[3].fixed.rank" for p in result.problems)


def test_known_file_goes_through_the_limits():
    """Item 6: an alias bomb in the known-disagreements file (28 s, 3 GB) is refused at once."""
    t0 = time.perf_counter()
    entries, problems = load_known(BAD / "known_alias_bomb.yaml")
    assert time.perf_counter() - t0 < 5
    assert entries == [] and len(problems) == 1
    assert "YAML nodes with aliases expanded: more than" in problems[0] and "known_alias_bomb.yaml" in problems[0]


def test_known_file_mistyped_fields_are_problems(tmp_path):
    f = tmp_path / "known.yaml"
    f.write_text("disagreements:\n"
                 "  - {id: a, case: a, versions: {numpy: '>=1'}, outcome: error, reason: r, strict: maybe}\n"
                 "  - {id: b, case: [x], versions: {numpy: '>=1'}, outcome: error, reason: r}\n")
    entries, problems = load_known(f)
    assert entries == []
    assert problems[0].endswith("disagreements[0] (a): strict: must be true or false")
    assert "disagreements[1] (b): case: must be a string" in problems[1]


def test_generation_problems_are_validation_problems():
    """Items 7 and 15: what validates can be generated, and random tensors are finite."""
    result = load_file(BAD / "random_bad.yaml")
    (ok,) = result.cases
    x, w, _ = ok.tensors("float64")
    assert np.isfinite(x).all() and np.isfinite(w).all()
    assert not ok.has_nonfinite_values
    # std: .inf was accepted; every check of it then held non-finite "random" inputs
    assert any(p.case == "infinite-std" for p in result.problems)


def test_duplicate_id_in_one_file_and_across_files():
    """Item 8: inside one file (load_file) and across files (load_cases), both reported."""
    within = load_file(BAD / "dup_in_file.yaml")
    assert [p.key for p in within.problems] == ["cases[1].id"]
    across = load_cases([BAD / "dup_in_file.yaml", BAD / "dup_in_file.yaml"])  # the walker takes it once
    assert len(across.files) == 1
    both = load_cases([BAD / "dup_id_a.yaml", BAD / "dup_id_b.yaml"])
    assert any("first defined in" in p.message for p in both.problems)


def test_merge_keys_supported_and_explicit_keys_win():
    """Item 14: `<<: *anchor` was refused by the duplicate-key loader."""
    result = load_file(DATA / "merge_keys.yaml")
    assert result.problems == []
    by = {c.id: c for c in result.cases}
    assert by["merged-override"].dtypes == ("float32",) and by["merged-override"].tags == ("shared",)
    two = by["merged-two"]
    assert two.stride == (2,) and two.tags == ("shared",)  # stride from the 2nd mapping, tags from the 1st
    assert two.input.values.tolist() == [[[1.0, 2.0]]]
    assert load_yaml("a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3}\n")["b"] == {"x": 1, "y": 3}
    with pytest.raises(yaml.YAMLError, match="duplicate merge key"):
        load_yaml("a: &a {x: 1}\nb: {<<: *a, <<: *a}\n")


def test_nested_merge_keys_are_linear():
    """Item 14: PyYAML's flattening of nested `<<: [*a, *a]` doubles per level (2**30 pairs here)."""
    t0 = time.perf_counter()
    result = load_file(BAD / "merge_key_bomb.yaml")
    assert time.perf_counter() - t0 < 5
    assert result.problems and "unknown key(s)" in result.problems[0].message


def _tree(tmp_path):
    """cases/a.yaml, cases/sub/b.yaml, a symlink to other/ (c.yaml), a symlink loop, a hidden dir,
    a known_disagreements file and a second symlink to sub/."""
    src = (CASES_DIR / "documents" / "d2l_transposed_conv.yaml").read_text()
    root = tmp_path / "cases"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (tmp_path / "other").mkdir()
    (root / "a.yaml").write_text(src)
    (root / "sub" / "b.yml").write_text(src.replace("id: doc-", "id: b-"))
    (tmp_path / "other" / "c.yaml").write_text(src.replace("id: doc-", "id: c-"))
    (root / ".hidden" / "h.yaml").write_text("not: a case file")
    (root / "known_disagreements.yaml").write_text("disagreements: []\n")
    (root / "linked").symlink_to(tmp_path / "other")
    (root / "sub" / "loop").symlink_to(root)
    (root / "sub2").symlink_to(root / "sub")
    return root


def test_discover_follows_symlinks_once_and_skips_what_pytest_skips(tmp_path):
    """Item 9: a symlink loop must not hang or duplicate; hidden dirs and the known file skipped."""
    root = _tree(tmp_path)
    found = [str(p.relative_to(root)) for p in discover([root])]
    assert found == ["a.yaml", "linked/c.yaml", "sub/b.yml"]
    assert load_cases([root]).problems == []
    assert len(discover([root, root / "sub", root / "a.yaml"])) == 3  # overlapping arguments


def test_run_collects_exactly_what_validate_reads(tmp_path):
    """Item 9: `run` passes discover()'s files to pytest, whose own walk follows the loop ~40 times."""
    import subprocess
    import sys

    root = _tree(tmp_path)
    p = subprocess.run([sys.executable, "-m", "convt_conformance", "run", "--cases", str(root), "--frameworks", "numpy",
                        "-n", "0", "--no-probes", "--results", str(tmp_path / "r.json"), "--", "--collect-only", "-q"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    files = {line.rsplit(": ", 1)[0] for line in p.stdout.splitlines()  # `-qq`: "<file>: <count>"
             if line.rsplit(": ", 1)[-1].isdigit()}
    assert files == {str(f.relative_to(tmp_path)) for f in discover([root])}, p.stdout[-3000:] + p.stderr[-2000:]
