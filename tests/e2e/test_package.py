"""The package as a user gets it: the wheel holds every data file of the source tree, and the
installed command runs from an empty directory with the packaged case library and known
disagreements."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src" / "convt_conformance"


def _data_files() -> set[str]:
    return {str(p.relative_to(SRC.parent)) for p in SRC.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


def test_the_wheel_holds_every_data_file(tmp_path):
    data = _data_files()
    assert {"convt_conformance/library/known_disagreements.yaml", "convt_conformance/loading/profiles.yaml",
            "convt_conformance/checking/invalid_rules.yaml"} <= data
    assert sum(f.startswith("convt_conformance/library/cases/") for f in data) >= 10
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("convt_conformance-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert data - names == set(), "data files missing from the wheel (pyproject package-data)"
    modules = {str(p.relative_to(SRC.parent)) for p in SRC.rglob("*.py")}
    assert modules - names == set()
    assert {n.split("/")[0] for n in names if not n.startswith("convt_conformance-")} == {"convt_conformance"}


def test_the_installed_command_runs_from_an_empty_directory(tmp_path):
    exe = shutil.which("conformance", path=str(Path(sys.executable).parent))
    assert exe, "the conformance console script is not installed beside this Python"
    p = subprocess.run([exe, "run", "--profile", "quick", "--frameworks", "numpy", "-n", "0",
                        "--results", "r.json", "--report", "r.html"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "verdict: CLEAN" in p.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["selection"]["selected_checks"] > 100
    files = {c["file"] for c in data["cases"].values()}
    # library cases are named as in the library, wherever the package is installed
    assert files and all(f.startswith("cases/") for f in files), sorted(files)[:5]
    assert (tmp_path / "r.html").stat().st_size > 10_000


@pytest.mark.parametrize("replaced", ["--cases", "--known"])
def test_cases_and_known_replace_the_packaged_ones(tmp_path, replaced):
    (tmp_path / "mine.yaml").write_text(
        "cases:\n  - id: mine-1\n    dtypes: [float32]\n"
        "    input: {shape: [1, 1, 2, 2], values: [[0, 1], [2, 3]]}\n"
        "    weight: {shape: [1, 1, 2, 2], values: [[0, 1], [2, 3]]}\n"
        "    expected: {shape: [1, 1, 3, 3], values: [[0, 0, 1], [0, 4, 6], [4, 12, 9]]}\n" if replaced == "--cases"
        else "disagreements: []\n")
    exe = shutil.which("conformance", path=str(Path(sys.executable).parent))
    tags = ["--tags", "documents"] if replaced == "--known" else []
    p = subprocess.run([exe, "run", "--frameworks", "numpy", "-n", "0", replaced, "mine.yaml", "--results", "r.json",
                        *tags],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    data = json.loads((tmp_path / "r.json").read_text())
    if replaced == "--cases":
        assert set(data["cases"]) == {"mine-1"}
        sel = data["selection"]  # someone's own cases run in full: no profile thins them
        assert sel["profile"] == "full" and sel["selected_checks"] == sel["collected_checks"] > 0
        assert "every collected check (profile full)" in p.stdout
    else:
        assert data["cases"] and all(c["file"].startswith("cases/documents/") for c in data["cases"].values())
