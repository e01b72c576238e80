"""The output-path policy (convt_conformance/cli/paths.py), the atomic writer
(convt_conformance/results/files.py), the argument types (convt_conformance/cli/arguments.py) and
shard counts that cost nothing in proportion to N."""

from __future__ import annotations

import argparse
import errno
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from convt_conformance.cli.arguments import (
    MAX_SETUP_TIMEOUT_S,
    check_timeout_seconds,
    error_growth_fraction,
    release_count,
    setup_timeout_seconds,
    shard_spec,
    worker_count,
)
from convt_conformance.cli.paths import (
    folder_problem,
    lock_holder,
    lock_output,
    output_problem,
    output_problems,
    release_locks,
)
from convt_conformance.loading.profiles import MAX_SHARDS, ProfileError, Shard, shard_of
from convt_conformance.model.shards import shard_problems
from convt_conformance.results import files
from convt_conformance.results.files import write_atomic
from convt_conformance.run.plan import load_run_profile, planned_checks
from convt_conformance.run.state import PREFLIGHT_WAIT_S


def test_regular_and_new_files_pass(tmp_path):
    (tmp_path / "old.json").write_text("x")
    os.symlink(tmp_path / "old.json", tmp_path / "link.json")
    for name in ("old.json", "new.json", "sub/dir/new.json", "link.json", "dangling.json"):
        if name == "dangling.json":
            os.symlink(tmp_path / "missing.json", tmp_path / name)
        assert output_problem("--out", str(tmp_path / name)) is None, name


def test_devices_fifos_directories_and_links_to_them_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    os.symlink(fifo, tmp_path / "to-fifo")
    os.symlink(os.devnull, tmp_path / "to-null")
    for path, why in ((os.devnull, "is a character device; give a regular file"),
                      (str(fifo), "is a FIFO (named pipe)"),
                      (str(tmp_path), "is a directory; give a file name"),
                      (str(tmp_path / "to-fifo"), "is a symbolic link to a FIFO (named pipe)"),
                      (str(tmp_path / "to-null"), "is a symbolic link to a character device")):
        hint = "" if why.endswith("name") or why.endswith("file") else "; give a regular file"
        assert output_problem("--results", path) == f"--results {path}: {why}{hint}", path


def test_unwritable_places_are_refused(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert "is not a directory" in (output_problem("-o", str(tmp_path / "f.txt" / "r.json")) or "")
    assert output_problem("-o", "") == "-o: an empty path"


def test_an_output_that_is_an_input_or_another_output_is_refused(tmp_path):
    (tmp_path / "in.json").write_text("{}")
    os.link(tmp_path / "in.json", tmp_path / "hard.json")
    os.symlink(tmp_path / "in.json", tmp_path / "soft.json")
    inputs = [("RESULTS", str(tmp_path / "in.json"))]
    for name in ("in.json", "hard.json", "soft.json"):
        errors = output_problems([("--junit-xml", str(tmp_path / name))], inputs)
        assert errors == [f"--junit-xml {tmp_path / name}: is also the input RESULTS {tmp_path / 'in.json'}; "
                          "it would be overwritten"], name
    twice = output_problems([("-o", str(tmp_path / "a.html")), ("--markdown-summary", str(tmp_path / "a.html"))])
    assert twice == [f"--markdown-summary {tmp_path / 'a.html'}: is also the output -o; one would overwrite the other"]


def test_a_results_file_under_a_run_lock_is_refused(tmp_path):
    res = str(tmp_path / "r.json")
    assert lock_holder(res) is None and not (tmp_path / ".r.json.lock").exists()  # probing creates nothing
    assert lock_output(res) is None
    try:
        assert lock_holder(res) == f"pid {os.getpid()}"
        errors = output_problems([("OUTPUT", res)])
        assert errors == [f"OUTPUT {res}: a run in progress is writing this results file (pid {os.getpid()}); "
                          "wait for it to finish or write elsewhere"]
    finally:
        release_locks()
    assert lock_holder(res) is None and output_problems([("OUTPUT", res)]) == []


def test_output_folders(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert folder_problem("--out", str(tmp_path)) is None
    assert folder_problem("--out", str(tmp_path / "new" / "dir")) is None
    assert folder_problem("--out", str(tmp_path / "f.txt")) == f"--out {tmp_path / 'f.txt'}: is a file; give a directory"
    assert folder_problem("--out", os.devnull) == f"--out {os.devnull}: is a character device; give a directory"


# -- the atomic writer ------------------------------------------------------------------------------

def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old report")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new report " * 1000)
    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize("mask, mode", [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)])
def test_new_files_get_the_umask_permissions(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        write_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode_and_a_link_stays_a_link(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    os.chmod(real, 0o640)
    os.symlink(real, tmp_path / "link.txt")
    assert write_atomic(tmp_path / "link.txt", b"new") == real
    assert (tmp_path / "link.txt").is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_the_writer_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file"):
        write_atomic(tmp_path / "fifo", "x")
    assert stat.S_ISFIFO((tmp_path / "fifo").stat().st_mode)


# -- argument types -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, text", [
    (check_timeout_seconds, "0"), (check_timeout_seconds, "-1"), (check_timeout_seconds, "nan"),
    (check_timeout_seconds, "inf"), (check_timeout_seconds, "86401"),
    (setup_timeout_seconds, "0"), (setup_timeout_seconds, "1e-400"), (setup_timeout_seconds, str(MAX_SETUP_TIMEOUT_S + 1)),
    (error_growth_fraction, "-0.1"), (error_growth_fraction, "1e300"), (error_growth_fraction, "nan"),
    (worker_count, "-1"), (worker_count, "1025"), (worker_count, "2.5"),
    (release_count, "0"), (release_count, "1001"), (release_count, "x"),
    (shard_spec, "0/2"), (shard_spec, "1/100001"), (shard_spec, "1/1000000000"),
])
def test_out_of_bounds_values_are_refused(kind, text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"'{text}'"):
        kind(text)


def test_in_bounds_values_pass():
    assert check_timeout_seconds("0.5") == 0.5 and check_timeout_seconds("86400") == 86400.0
    assert setup_timeout_seconds("180") == 180.0 and MAX_SETUP_TIMEOUT_S * 2 == PREFLIGHT_WAIT_S
    assert error_growth_fraction("0") == 0.0 and worker_count("auto") == "auto" and worker_count("1024") == "1024"
    assert release_count("3") == 3 and shard_spec("2/4") == "2/4" and shard_spec("") == ""
    assert shard_spec(f"1/{MAX_SHARDS}") == f"1/{MAX_SHARDS}"


# -- shards ---------------------------------------------------------------------------------------------

def test_shard_count_is_capped_and_checked_against_the_selection():
    with pytest.raises(ProfileError, match=f"N is at most {MAX_SHARDS}"):
        Shard.parse("1/1000000000")
    assert Shard(2, 50).problem(3) == "--shard 2/50: N = 50 is more than the 3 check(s) selected; give N <= 3"
    assert Shard(2, 3).problem(3) is None and Shard(1, 5).problem(0) is None


def test_shard_of_costs_nothing_in_proportion_to_n(tmp_path):
    """`--shard 1/1000000000` made a list of N shard loads (19 GB before the kernel killed it)."""
    (tmp_path / "t.yaml").write_text("cases:\n  - id: t\n    input: {values: [[[1, 2]]]}\n"
                                     "    weight: {values: [[[1, 1]]]}\n    expected: {shape: [1, 1, 3], values: [[[1, 3, 2]]]}\n")
    checks, problems = planned_checks([str(tmp_path / "t.yaml")], ["numpy"])
    assert not problems and len(checks) >= 2
    profile = load_run_profile("full")
    ids = [c.check_id for c in checks]
    tracemalloc.start()
    try:
        huge = shard_of(profile, checks, 10**6, ids)  # (the old list of N loads: ~100 MB here)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert huge == shard_of(profile, checks, len(checks), ids)  # the same split as N = the checks
    assert sorted(huge) == list(range(1, len(checks) + 1))  # one check a shard


def test_merge_names_missing_shards_without_enumerating_them():
    """A results file claiming a billion shards made `merge` build the set of every shard number."""
    shard = {"selection": {"digest": "d", "shard": {"index": 1, "count": 10**9}}, "complete": True, "results": []}
    tracemalloc.start()
    try:
        problems = shard_problems([shard], ["a.json"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert problems == ["missing shard(s) 2/1000000000, 3/1000000000, 4/1000000000, 5/1000000000, 6/1000000000, "
                        "7/1000000000, 8/1000000000, 9/1000000000, 10/1000000000, 11/1000000000 and 999999989 more"]


def test_merge_lists_every_missing_shard_of_a_small_count():
    shards = [{"selection": {"digest": "d", "shard": {"index": k, "count": 4}}, "complete": True, "results": []}
              for k in (1, 3)]
    assert shard_problems(shards, ["a", "b"]) == ["missing shard(s) 2/4, 4/4"]


def test_check_paths_applies_the_policy_to_ci_outputs(tmp_path):
    """The commands' path checks go through the policy (convt_conformance/cli/common.py calls
    output_problems): a FIFO given to a CI output of `report` is refused by check_paths."""
    from convt_conformance.cli.common import check_paths

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "r.json").write_text("{}")
    args = argparse.Namespace(results=str(tmp_path / "r.json"), baseline=None, output=str(tmp_path / "o.html"),
                              junit_xml=str(tmp_path / "fifo"), markdown_summary=None)
    assert check_paths("report", args) == [f"--junit-xml {tmp_path / 'fifo'}: is a FIFO (named pipe); give a regular file"]
    assert not Path(tmp_path / "o.html").exists()
