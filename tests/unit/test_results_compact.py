"""Compact results (schemas 2 and 3): what is per case, per API and per run is stored once; readers see
version-1 records, and version-1 files stay readable."""

from __future__ import annotations

import json

from convt_conformance.results.store import read_results, write_results
from tests.conftest import DATA, ROOT

BASELINE = ROOT / "reports" / "baselines" / "results-tensorflow-2.21.0-cpu.json"


def _strip(r):
    return {k: v for k, v in r.items() if k not in ("nodeid", "seconds")}


def test_round_trip_restores_version_1_records(tmp_path):
    for src in (BASELINE, DATA / "results_sample.json"):
        v1 = read_results(src)
        write_results(tmp_path / "r.json", v1)
        assert json.loads((tmp_path / "r.json").read_text())["schema"] == "conformance-results/3"
        back = read_results(tmp_path / "r.json")
        assert [_strip(r) for r in back["results"]] == [_strip(r) for r in v1["results"]]
        assert back["environment"] == v1["environment"] and back["problems"] == v1["problems"]


def test_compact_size_per_check(tmp_path):
    v1 = read_results(BASELINE)
    write_results(tmp_path / "r.json", v1)
    per_check = (tmp_path / "r.json").stat().st_size / len(v1["results"])
    assert per_check <= 600, per_check  # the goal: at most 0.6 KB a check on average (was 2.5 KB)


def test_in_progress_file_reads_the_streamed_records(tmp_path):
    from convt_conformance.run.collector import stream_path

    path = tmp_path / "r.json"
    write_results(path, {"schema": "conformance-results/3", "complete": False, "in_progress": True,
                         "stream": stream_path(path).name, "results": [], "problems": []})
    rec = {"case": "a", "adapter": "numpy", "api": "recipe", "device": "cpu", "dtype": "float32", "status": "pass"}
    stream_path(path).write_text(json.dumps(rec) + "\n" + '{"case": "trunc')  # died mid-write
    data = read_results(path)
    assert data["complete"] is False and [r["case"] for r in data["results"]] == ["a"]


def test_version_3_stores_messages_and_known_entries_once_and_version_2_stays_readable(tmp_path):
    from convt_conformance.results.compact import compact

    v1 = read_results(DATA / "results_sample.json")
    doc = compact(v1)
    msgs = [r["message"] for r in v1["results"] if r.get("message")]
    stored = [r["message"] for r in doc["results"] if "message" in r]  # (a pass's message is derived)
    assert doc["schema"] == "conformance-results/3" and stored and all(isinstance(i, int) for i in stored)
    assert len(doc["messages"]) == len(set(doc["messages"])) == len(set(stored)) < len(msgs)
    # the same document as version 2 wrote it: messages and known entries in the records, no tables
    v2 = json.loads(json.dumps(doc))
    for r in v2["results"]:
        for field, table in (("message", "messages"), ("known", "knowns")):
            if isinstance(r.get(field), int):
                r[field] = v2[table][r[field]]
    del v2["messages"], v2["knowns"]
    v2["schema"] = "conformance-results/2"
    (tmp_path / "v2.json").write_text(json.dumps(v2))
    back = read_results(tmp_path / "v2.json")
    assert [_strip(r) for r in back["results"]] == [_strip(r) for r in v1["results"]]


def test_the_run_takes_its_own_written_payload_unless_the_file_changed(tmp_path):
    """`conformance run` takes its verdict from the file it wrote; where this process wrote it and
    nothing changed it since, the payload written is that file's content, and it is not read back."""
    from convt_conformance.results.store import results_of_run
    from convt_conformance.results.verdict import run_verdict

    v1 = read_results(DATA / "results_sample.json")
    path = tmp_path / "r.json"
    write_results(path, v1)
    mine = results_of_run(path)
    assert mine["results"] is v1["results"]  # not read back
    read = read_results(path)
    assert [_strip(r) for r in mine["results"]] == [_strip(r) for r in read["results"]]
    assert run_verdict(mine).line() == run_verdict(read).line()
    # the file replaced since (another writer, a hand edit): it is read
    write_results(path, v1)
    other = json.loads(path.read_text())
    other["results"] = other["results"][:1]
    path.write_text(json.dumps(other))
    assert len(results_of_run(path)["results"]) == 1
    # and once taken, the next call reads the file
    write_results(path, v1)
    results_of_run(path)
    assert results_of_run(path)["results"] is not v1["results"]


def test_a_run_that_stopped_in_progress_reads_its_streamed_records(tmp_path):
    """Only a finished file's payload is taken: an in-progress header (the finish never came)
    is read, so the records streamed to disk are there."""
    from convt_conformance.results.store import results_of_run
    from convt_conformance.run.collector import stream_path

    path = tmp_path / "r.json"
    v1 = read_results(DATA / "results_sample.json")
    write_results(path, {"schema": "conformance-results/3", "complete": False, "in_progress": True,
                         "stream": stream_path(path).name, "results": [], "problems": []})
    stream_path(path).write_text("".join(json.dumps(r.as_dict()) + "\n" for r in v1["results"][:3]))
    assert len(results_of_run(path)["results"]) == 3
