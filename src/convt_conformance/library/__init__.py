"""The case library and the known disagreements shipped with the package (data only):
:data:`CASES_DIR` and :data:`KNOWN_FILE` are what ``conformance run`` uses unless ``--cases`` /
``--known`` replace them."""

from __future__ import annotations

from pathlib import Path

LIBRARY_DIR = Path(__file__).resolve().parent
CASES_DIR = LIBRARY_DIR / "cases"
KNOWN_FILE = LIBRARY_DIR / "known_disagreements.yaml"
