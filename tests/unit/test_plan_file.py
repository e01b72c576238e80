"""The run's plan computed once by xdist's controller and read by its workers
(convt_conformance/run/plan_file.py): what a worker reads is what the controller computed."""

from __future__ import annotations

import threading
import time

from convt_conformance.run.grouping import Member, groups_as_json, groups_from_json, make_groups
from convt_conformance.run.plan_file import PLAN_FILE, read_plan, write_plan


def _members(case_ids: list[str], adapter: str = "torch", dtype: str = "float32") -> list[Member]:
    return [Member(f"{c}[{adapter}.conv_transpose2d-cpu-{dtype}]", c, adapter, "conv_transpose", "conv_transpose2d",
                   "cpu", dtype) for c in case_ids]


def test_groups_survive_the_file():
    groups = make_groups([("cases/a.yaml", _members(["a1", "a2", "a3"])),
                          ("cases/b.yaml", _members(["b1"]) + _members(["b1"], "numpy"))], lambda col: 0.9)
    back = groups_from_json(groups_as_json(groups))
    assert back == groups
    assert [g.name for g in back["cases/a.yaml"]] == ["@1:torch.conv_transpose2d-cpu-float32",
                                                      "@2:torch.conv_transpose2d-cpu-float32"]
    assert back["cases/b.yaml"][1].members == _members(["b1"], "numpy")


def test_a_worker_waits_for_the_controllers_file(tmp_path):
    content = {"plan": {"groups": {}, "selected": 0, "selection": {"profile": "quick"}}}
    writer = threading.Timer(0.2, write_plan, args=(str(tmp_path), content))
    writer.start()
    t0 = time.monotonic()
    assert read_plan(str(tmp_path), wait_s=30) == content
    assert time.monotonic() - t0 >= 0.15
    assert sorted(p.name for p in tmp_path.iterdir()) == [PLAN_FILE]  # written atomically: no partial file left


def test_no_file_within_the_bound_means_compute_it_here(tmp_path):
    t0 = time.monotonic()
    assert read_plan(str(tmp_path), wait_s=0.1) is None
    assert time.monotonic() - t0 < 5
