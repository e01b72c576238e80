"""The output-path policy and the bounded arguments, through the command line in subprocesses:
every file ``conformance`` writes is a regular file (or new), never an input, refused before any
work starts (exit 2), written whole or not at all, and never a results file a run is writing;
every numeric option is finite and bounded."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import convt_conformance
from convt_conformance.cli.paths import lock_output, release_locks
from tests.conftest import DATA, ROOT, TINY_CASE

SAMPLE = DATA / "results_sample.json"
#: the copy of the package these tests import, for the subprocesses too
PACKAGE_PARENT = str(Path(convt_conformance.__file__).resolve().parent.parent)
TINY = TINY_CASE
USAGE = 2


def conformance(*args: str, cwd: Path, timeout: float = 300, preexec=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([PACKAGE_PARENT, str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "convt_conformance", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with a tiny case file (``tiny.yaml``, 3 NumPy checks) and a results file (``r.json``)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    shutil.copy(SAMPLE, tmp_path / "r.json")
    return tmp_path


def _run(*extra: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return conformance("run", "--cases", "tiny.yaml", "--frameworks", "numpy", "-n", "0", "--no-probes", *extra,
                       cwd=cwd, timeout=timeout)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a character device (mknod) needs root")
def test_results_on_a_character_device_is_refused_and_the_device_kept(work):
    """As root, `--results x/null` (a character device) exited 0 and replaced the device with a
    regular file; so did --report and merge's output."""
    (work / "x").mkdir()
    dev = work / "x" / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for argv in (["run", "--cases", "tiny.yaml", "--frameworks", "numpy", "-n", "0", "--results", "x/null"],
                 ["run", "--cases", "tiny.yaml", "--frameworks", "numpy", "-n", "0", "--report", "x/null"],
                 ["merge", "x/null", "r.json"], ["report", "r.json", "-o", "x/null"]):
        p = conformance(*argv, cwd=work)
        assert p.returncode == USAGE, (argv, p.stderr[-2000:])
        assert "x/null: is a character device" in p.stderr, argv
        assert stat.S_ISCHR(dev.stat().st_mode), argv


def test_outputs_on_a_fifo_are_refused_before_anything_runs(work):
    """A FIFO as --results, --report, --junit-xml, --markdown-summary, repro -o or merge's output
    is refused (exit 2, naming option, path and reason) and stays a FIFO; nothing ran."""
    fifo = work / "pipe"
    os.mkfifo(fifo)
    check = json.loads(SAMPLE.read_text())["results"][0]
    check_id = f"{check['case']}[{check['adapter']}.{check['api']}-{check['device']}-{check['dtype']}]"
    cases = (
        (["run", "--cases", "tiny.yaml", "--frameworks", "numpy", "--results", "pipe"], "--results pipe"),
        (["run", "--cases", "tiny.yaml", "--frameworks", "numpy", "--results", "new.json", "--report", "pipe"],
         "--report pipe"),
        (["report", "r.json", "-o", "out.html", "--junit-xml", "pipe"], "--junit-xml pipe"),
        (["report", "r.json", "-o", "out.html", "--markdown-summary", "pipe"], "--markdown-summary pipe"),
        (["repro", check_id, "--results", "r.json", "-o", "pipe"], "--output pipe"),
        (["merge", "pipe", "r.json"], "OUTPUT pipe"),
    )
    for argv, named in cases:
        p = conformance(*argv, cwd=work, timeout=120)
        assert p.returncode == USAGE, (argv, p.stderr[-2000:])
        assert f"{named}: is a FIFO (named pipe)" in p.stderr, (argv, p.stderr[-2000:])
        assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert not (work / "new.json").exists() and not (work / "out.html").exists()


def test_ci_outputs_and_reproducer_never_overwrite_an_input(work):
    """`report r.json -o out.html --junit-xml r.json` overwrote the input results with JUnit XML;
    --markdown-summary and repro -o were not checked either."""
    before = (work / "r.json").read_bytes()
    check = json.loads(before)["results"][0]
    check_id = f"{check['case']}[{check['adapter']}.{check['api']}-{check['device']}-{check['dtype']}]"
    os.link(work / "r.json", work / "hard.json")
    for argv, text in (
        (["report", "r.json", "-o", "out.html", "--junit-xml", "r.json"], "--junit-xml r.json: is also the input RESULTS"),
        (["report", "r.json", "-o", "out.html", "--markdown-summary", "hard.json"],
         "--markdown-summary hard.json: is also the input RESULTS"),
        (["report", "r.json", "-o", "out.html", "--junit-xml", "out.html"], "is also the output --output"),
        (["repro", check_id, "--results", "r.json", "-o", "r.json"], "--output r.json: is also the input --results"),
        (["run", "--cases", "tiny.yaml", "--frameworks", "numpy", "--results", "n.json", "--junit-xml", "tiny.yaml"],
         "--junit-xml tiny.yaml: is also the input --cases"),
    ):
        p = conformance(*argv, cwd=work)
        assert p.returncode == USAGE and text in p.stderr, (argv, p.stderr[-2000:])
    assert (work / "r.json").read_bytes() == before
    assert not (work / "out.html").exists() and not (work / "n.json").exists()


def test_merge_and_report_respect_the_run_lock(work):
    """`merge` and `report -o` wrote over a results file that a running `run` was writing."""
    target = work / "running.json"
    target.write_text("in progress")
    assert lock_output(str(target)) is None  # what `run --results running.json` holds while it runs
    try:
        for argv, named in ((["merge", "running.json", "r.json"], "OUTPUT running.json"),
                            (["report", "r.json", "-o", "running.json"], "--output running.json"),
                            (["report", "r.json", "-o", "o.html", "--junit-xml", "running.json"],
                             "--junit-xml running.json")):
            p = conformance(*argv, cwd=work)
            assert p.returncode == USAGE, (argv, p.stderr[-2000:])
            assert f"{named}: a run in progress is writing this results file (pid {os.getpid()})" in p.stderr
            assert target.read_text() == "in progress"
    finally:
        release_locks()
    p = conformance("merge", "running.json", "r.json", cwd=work)  # the run is over: allowed
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(target.read_text())["results"]


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_failed_write_leaves_the_previous_report_whole(work):
    """A report written in place and cut short (a full disk, a file-size limit) was left truncated;
    now it is written to a temporary file and moved into place, so the old report stays whole and no
    temporary file is left behind."""
    old = "<html>the previous report</html>\n"
    (work / "out.html").write_text(old)
    p = conformance("report", "r.json", "-o", "out.html", cwd=work, preexec=_limit_file_size(4096))
    assert p.returncode != 0 and "File too large" in p.stderr, p.stderr[-2000:]
    assert (work / "out.html").read_text() == old
    assert sorted(f.name for f in work.iterdir()) == ["out.html", "r.json", "tiny.yaml"]


def test_new_outputs_get_the_umask_permissions_and_replaced_ones_keep_theirs(work):
    (work / "kept.html").write_text("x")
    os.chmod(work / "kept.html", 0o604)
    p = conformance("report", "r.json", "-o", "new.html", "--junit-xml", "kept.html", cwd=work,
                    preexec=lambda: os.umask(0o027))
    assert p.returncode == 0, p.stderr[-2000:]
    assert stat.S_IMODE((work / "new.html").stat().st_mode) == 0o640
    assert stat.S_IMODE((work / "kept.html").stat().st_mode) == 0o604
    assert (work / "kept.html").read_text().startswith("<?xml")


def test_a_huge_shard_count_is_a_usage_error_at_once(work):
    """`--shard 1/1000000000` allocated memory in proportion to N (19 GB before the kernel killed it)."""
    t0 = time.monotonic()
    p = _run("--results", "s.json", "--shard", "1/1000000000", cwd=work, timeout=120)
    assert p.returncode == USAGE and "argument --shard: '1/1000000000': N is at most 100000" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 60 and not (work / "s.json").exists()


@pytest.mark.parametrize("workers", ["0", "1"])
def test_more_shards_than_checks_is_refused(work, workers):
    """N above the checks selected (3 here) is refused once they are known: in the single process
    after collection, under xdist by the controller."""
    p = conformance("run", "--cases", "tiny.yaml", "--frameworks", "numpy", "-n", workers, "--no-probes",
                    "--results", "s.json", "--shard", "2/50", cwd=work)
    assert p.returncode == USAGE, p.stdout[-2000:] + p.stderr[-2000:]
    assert "--shard 2/50: N = 50 is more than the 3 check(s) selected; give N <= 3" in p.stdout + p.stderr
    assert "INTERNALERROR" not in p.stdout + p.stderr


@pytest.mark.parametrize("argv, text", [
    (["run", "--setup-timeout", "0"], "argument --setup-timeout: '0': give a finite number of seconds > 0"),
    (["run", "--setup-timeout", "inf"], "argument --setup-timeout: 'inf'"),
    (["run", "--setup-timeout", "1e9"], "at most 1800"),
    (["run", "--check-timeout", "0"], "argument --check-timeout: '0': give a finite number of seconds > 0"),
    (["run", "--check-timeout", "1e12"], "at most 86400"),
    (["run", "-n", "1000000"], "argument -n: '1000000'"),
    (["run", "--shard", "0/3"], "argument --shard"),
    (["compare", "a", "b", "--error-growth", "1e308"], "argument --error-growth: '1e308'"),
    (["releases", "numpy", "--last", "0"], "argument --last: '0'"),
    (["releases", "numpy", "--last", "99999999"], "argument --last: '99999999'"),
    (["releases", "numpy", "--last", "2", "-n", "-1"], "argument -n: '-1'"),
    (["releases", "numpy", "--last", "2", "--shard", "1/1000000000"], "argument --shard"),
])
def test_numeric_options_are_finite_and_bounded(work, argv, text):
    """`--setup-timeout 0` restarted workers 114 times in 150 s; every number the parser takes is
    now checked by the parser."""
    p = conformance(*argv, cwd=work, timeout=120)
    assert p.returncode == USAGE and text in p.stderr, p.stderr[-2000:]
