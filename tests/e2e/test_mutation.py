"""The mutant framework (mutation/site/convt_mutants) and the mutation score script.

(a) the outside plugin is found through its hand-written dist-info's entry point;
(b) on a handful of committed cases every bug mutant is killed and no correct variant flagged;
(c) scripts/mutation_score.py prints the table and a summary consistent with it, in-process and
    from a results file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convt_conformance.checking.check import run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from tests.conftest import ROOT

SITE = ROOT / "mutation" / "site"
SCRIPT = ROOT / "scripts" / "mutation_score.py"
KILLING = ("fail", "error", "accepted-invalid", "crash")

# A small cover of the catalogue (chosen from a default-run score and the coverage cases): between them these cases
# kill every bug mutant; they are also the cases every correct variant must pass.
COVER = [
    "sw2d-b3-k2-s3x2-p1-op1", "edge-nan-weight", "swgrp-ci4-co8-g2", "sw1d-same-k2-p0x1",
    "edge-mcov-outpad-lt-dilation-3d", "edge-zero-batch", "sw3d-pd-d2", "invalid-zero-output",
    "invalid-zero-spatial", "invalid-negative-padding", "invalid-groups-indivisible",
    "invalid-output-padding-ge-both",
    # the zero-skipping, kernel-size-1 and output_padding-past-the-stride mutants
    "cov-1d-nan-on-zero-tap", "cov-1d-zero-on-inf-tap", "cov-3d-expected-bias", "strpad1d-dil-psame-op1",
]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(SITE)])}


@pytest.fixture(scope="module")
def catalogue():
    """The plugin's modules, imported with mutation/site on sys.path only while importing (so
    the registry of this test process does not start listing the plugin)."""
    sys.path.insert(0, str(SITE))
    try:
        from convt_mutants import catalogue as cat
        from convt_mutants.adapter import MutantAdapter
    finally:
        sys.path.remove(str(SITE))
    return cat, MutantAdapter()


def test_entry_point_is_discoverable_with_the_pythonpath():
    code = ("import importlib.metadata as md, json\n"
            "from convt_conformance.adapters import registry\n"
            "eps = [e for e in md.entry_points(group='convt_conformance.adapters') if e.name == 'mutant']\n"
            "cls = eps[0].load() if eps else None\n"
            "print(json.dumps({'value': eps[0].value if eps else None, 'dist': eps[0].dist.name if eps else None,\n"
            "  'class': cls.__name__ if cls else None, 'names': list(registry.adapter_names()),\n"
            "  'problems': registry.registry_problems(), 'version': cls().version() if cls else None}))\n")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["value"] == "convt_mutants.adapter:MutantAdapter"
    assert info["dist"] == "convt-mutants" and info["version"] == "0.1"
    assert info["class"] == "MutantAdapter"
    assert "mutant" in info["names"] and info["problems"] == []


def test_catalogue_size_and_families(catalogue):
    cat, adapter = catalogue
    bugs = [m for m in cat.MUTANTS if m.kind == "bug"]
    oks = [m for m in cat.MUTANTS if m.kind == "correct"]
    assert len(bugs) >= 20 and len(oks) >= 3
    families = {m.family for m in bugs}
    for fam in ("layout", "flip", "in/out swap", "padding side", "output_padding", "group mapping", "bias",
                "accumulation precision", "input rounding", "NaN/Inf propagation", "batch handling",
                "missing validation", "spurious validation", "zero skipping"):
        assert fam in families, fam
    assert any("dilation" in f for f in families) and any("stride" in f for f in families)
    assert adapter.apis == tuple(m.name for m in cat.MUTANTS)
    assert all("-" not in a for a in adapter.apis)  # '-' separates the parts of a check id


def test_cover_kills_every_bug_and_flags_no_correct_variant(catalogue):
    cat, adapter = catalogue
    loaded = load_cases([CASES_DIR])
    assert not loaded.problems
    by_id = {c.id: c for c in loaded.cases}
    killed: dict[str, set[str]] = {m.name: set() for m in cat.MUTANTS}
    flagged = []
    for cid in COVER:
        case = by_id[cid]
        for dtype in case.dtypes:
            for m in cat.MUTANTS:
                rec = run_check(case, adapter, m.name, "cpu", dtype, "strict", [])
                if rec["status"] in KILLING:
                    killed[m.name].add(cid)
                    if m.kind == "correct":
                        flagged.append((m.name, cid, dtype, rec["status"], rec["message"][:200]))
    assert flagged == []
    survivors = [m.name for m in cat.MUTANTS if m.kind == "bug" and not killed[m.name]]
    assert survivors == []


def test_correct_variants_reject_every_invalid_case(catalogue):
    cat, adapter = catalogue
    invalid = [c for c in load_cases([CASES_DIR / "invalid"]).cases if c.expected_error]
    assert len(invalid) >= 20
    for m in (m for m in cat.MUTANTS if m.kind == "correct"):
        statuses = {run_check(c, adapter, m.name, "cpu", "float32", "strict", [])["status"] for c in invalid}
        assert statuses == {"rejected"}, m.name


def _score(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / f"{name}.json"
    run = subprocess.run([sys.executable, str(SCRIPT), *args, "--json", str(out)], env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode in (0, 1), run.stderr
    return run, json.loads(out.read_text())


def test_score_script_documents(tmp_path, catalogue):
    cat, _ = catalogue
    records = tmp_path / "records.json"
    run, table = _score(tmp_path, "inproc", "--tags", "documents", "--results", str(records))
    rows = {r["mutant"]: r for r in table["rows"]}
    assert list(rows) == [m.name for m in cat.MUTANTS]
    printed = [line.split()[0] for line in run.stdout.splitlines() if line.startswith(("bug_", "ok_"))]
    assert printed == list(rows)  # one table line per mutant, in catalogue order
    bugs = [r for r in rows.values() if r["kind"] == "bug"]
    killed = sum(r["n_cases"] > 0 for r in bugs)
    thick = sum(r["n_cases"] >= 3 for r in bugs)
    flagged = sum(r["n_cases"] > 0 for r in rows.values() if r["kind"] == "correct")
    assert (f"killed {killed}/{len(bugs)} bug mutants (each by >= 3 distinct cases: {thick}/{len(bugs)}); "
            f"correct variants flagged: {flagged}/{len(rows) - len(bugs)}") in run.stdout
    assert all(r["n_cases"] == len(r["cases"]) and all(c.startswith("doc-") for c in r["cases"])
               for r in rows.values())
    assert flagged == 0
    assert 0 < killed < len(bugs)  # the documents alone kill some mutants, not all
    assert run.returncode == (0 if thick == len(bugs) else 1)
    # The same records read back as a results file give the same table.
    again, table2 = _score(tmp_path, "fromres", "--from-results", str(records))
    assert again.returncode == run.returncode
    assert table2["rows"] == table["rows"]
