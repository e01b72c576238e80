"""CheckRecord (convt_conformance/model/record.py): one typed record for every producer, written in the
key order results files have always had."""

from __future__ import annotations

import json

import pytest

from convt_conformance.checking.check import base_record, run_check
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases
from convt_conformance.model.record import BASE_FIELDS, OPTIONAL_FIELDS, CheckRecord
from convt_conformance.results.store import read_results
from tests.conftest import DATA, ROOT

BASELINE = ROOT / "reports" / "baselines" / "results-tensorflow-2.21.0-cpu.json"


def test_every_field_is_written_once():
    names = {f for f in CheckRecord.__dataclass_fields__ if f != "extra"}
    assert set(BASE_FIELDS) | set(OPTIONAL_FIELDS) == names
    assert not set(BASE_FIELDS) & set(OPTIONAL_FIELDS)


@pytest.mark.parametrize("path", [BASELINE, DATA / "results_sample.json"])
def test_from_dict_then_as_dict_is_the_record_read(path):
    records = read_results(path)["results"]
    assert records
    for rec in records:
        back = CheckRecord.from_dict(rec).as_dict()
        assert back == rec
        assert list(back)[:len(BASE_FIELDS)] == list(BASE_FIELDS)


def test_unknown_keys_are_kept_last_and_mapping_access_reads_the_dict():
    rec = CheckRecord.from_dict({"case": "c", "adapter": "a", "api": "x", "device": "cpu", "dtype": "float32",
                                 "status": "pass", "from_a_newer_writer": 1})
    d = rec.as_dict()
    assert list(d)[-1] == "from_a_newer_writer" and rec["from_a_newer_writer"] == 1
    assert rec["status"] == "pass" and rec.get("traceback") is None and "traceback" not in rec
    assert dict(rec) == d and len(rec) == len(d)
    with pytest.raises(KeyError):
        rec["traceback"]
    json.dumps(rec.as_dict())  # what crosses a process boundary is plain JSON


def test_a_record_of_a_case_carries_the_case_fields():
    from convt_conformance.adapters.registry import get_adapter

    case = next(c for c in load_cases([CASES_DIR / "documents"]).cases if c.id == "doc-basic-2x2")
    a = get_adapter("numpy")
    rec = base_record(case, a, "recipe", "cpu", "float32", "strict")
    assert (rec.file, rec.tags, rec.params, rec.expected_shape) == (
        case.file, list(case.tags), case.params(), list(case.output_shape))
    ran = run_check(case, a, "recipe", "cpu", "float32", "strict", [])
    assert ran.status == "pass" and ran.native_dtype == "float32"
    assert {k: ran[k] for k in ("case", "file", "tags", "params")} == {k: rec[k] for k in ("case", "file", "tags", "params")}
