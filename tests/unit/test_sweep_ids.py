"""Sweep ids are built from the parameters alone: a grid that grows keeps every id (and seed)."""

from __future__ import annotations

import numpy as np

from convt_conformance.loading.cases import load_file
from tests.conftest import DATA


def test_a_grown_grid_keeps_every_id_and_its_tensors():
    before = {c.id: c for c in load_file(DATA / "sweep_ids" / "before.yaml").cases}
    after = {c.id: c for c in load_file(DATA / "sweep_ids" / "after.yaml").cases}
    assert before and set(before) < set(after)
    for cid, c in before.items():
        assert np.array_equal(c.tensors("float64")[0], after[cid].tensors("float64")[0]), cid
        assert c.params() == after[cid].params()


def test_ids_name_what_differs_from_the_base():
    ids = {c.id for c in load_file(DATA / "sweep_ids" / "after.yaml").cases}
    assert "grow-k2" in ids and "grow-s2" in ids and "grow-k2-s3-d2" in ids and "grow" in ids
