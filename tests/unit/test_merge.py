"""Merging results files of disjoint runs (one per framework venv on GPU machines)."""

from __future__ import annotations

import copy
import json

import pytest

from convt_conformance.cli.main import main
from convt_conformance.results.merge import MergeError, merge_results
from tests.conftest import DATA

SAMPLE = json.loads((DATA / "results_sample.json").read_text())


def _split(payload):
    a, b = copy.deepcopy(payload), copy.deepcopy(payload)
    a["results"] = [r for r in payload["results"] if r["adapter"] in ("numpy", "torch")]
    b["results"] = [r for r in payload["results"] if r["adapter"] not in ("numpy", "torch")]
    a["environment"]["frameworks"] = {"numpy": "1", "torch": "2", "jax": None}
    b["environment"]["frameworks"] = {"jax": "3", "tensorflow": "4"}
    a["environment"]["framework_devices"] = {"numpy": ["cpu"], "torch": ["cpu", "gpu"]}
    b["environment"]["framework_devices"] = {"jax": ["cpu", "gpu"]}
    b["environment"]["framework_settings"] = {"jax": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}}
    return a, b


def test_merge_disjoint_runs(tmp_path):
    a, b = _split(SAMPLE)
    merged = merge_results([a, b], ["a.json", "b.json"])
    assert len(merged["results"]) == len(SAMPLE["results"])
    assert merged["environment"]["frameworks"] == {"numpy": "1", "torch": "2", "jax": "3", "tensorflow": "4"}
    assert merged["environment"]["framework_devices"] == {"numpy": ["cpu"], "torch": ["cpu", "gpu"],
                                                          "jax": ["cpu", "gpu"]}
    assert merged["environment"]["framework_settings"]["jax"] == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    fa, fb, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "m.json"
    fa.write_text(json.dumps(a))
    fb.write_text(json.dumps(b))
    assert main(["merge", str(out), str(fa), str(fb)]) == 0
    assert json.loads(out.read_text())["merged_from"] == [str(fa), str(fb)]


def test_merge_refuses_overlap_and_mixed_precision():
    a, b = _split(SAMPLE)
    with pytest.raises(MergeError, match="also in a.json"):
        merge_results([a, a], ["a.json", "a2.json"])
    b["environment"]["precision"] = "default"
    with pytest.raises(MergeError, match="precision"):
        merge_results([a, b], ["a.json", "b.json"])
