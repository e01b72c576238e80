"""The preflight's children (convt_conformance/run/preflight.py): several frameworks set up one
after another in one child; one that crashes there costs that child, not the others' set-up, and
takes its remaining attempt alone."""

from __future__ import annotations

import os

from convt_conformance.run.preflight import _batches, preflight
from tests.conftest import ROOT

CRASHY = ROOT / "tests" / "data" / "plugins" / "crashy"


def test_frameworks_sharing_an_import_share_a_child():
    assert _batches(["numpy", "tensorflow", "jax", "litert"]) == [["numpy"], ["tensorflow", "litert"], ["jax"]]


def test_a_crash_in_a_shared_child_leaves_out_that_framework_alone(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(CRASHY)]))
    monkeypatch.setenv("CRASHY_MODE", "crash")
    found = preflight(["crashy", "numpy", "mlx"], "strict", 120, children=1)
    assert set(found["unavailable"]) == {"crashy"}
    why = found["unavailable"]["crashy"]
    assert why.startswith("the process setting it up died with signal 6") and why.endswith("(2 attempts)"), why
    # the frameworks after it were set up by a new child: what a child of their own shows
    # (an adapter not installed says so there: still an entry of "frameworks", left to the run)
    assert set(found["frameworks"]) == {"numpy", "mlx"}
    alone = preflight(["numpy"], "strict", 120)
    assert found["frameworks"]["numpy"] == alone["frameworks"]["numpy"]

