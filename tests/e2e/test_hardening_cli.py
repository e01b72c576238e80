"""Hardening, command-line side: compare verdicts, results-file validation, path checks before
starting, argument types, housekeeping (umask, JAX cache, broken pipe, concurrent runs)."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys

import pytest

from convt_conformance.cli import main as cli
from convt_conformance.cli.main import main
from convt_conformance.cli.paths import lock_output, release_locks
from convt_conformance.library import CASES_DIR
from convt_conformance.results.store import ResultsFileError, read_results, write_results
from tests.conftest import DATA, ROOT

SAMPLE = json.loads((DATA / "results_sample.json").read_text())
CASE = str(CASES_DIR / "documents" / "d2l_transposed_conv.yaml")


def _write(tmp_path, name, payload):
    f = tmp_path / name
    f.write_text(json.dumps(payload))
    return str(f)


# -- item 4: compare never passes an empty or incomplete new run, nor disappeared checks -------------

@pytest.mark.parametrize("change", ["empty", "incomplete", "one-gone"])
def test_compare_refuses_empty_incomplete_or_shrunk_new_run(tmp_path, capsys, change):
    new = copy.deepcopy(SAMPLE)
    if change == "empty":
        new["results"] = []
    elif change == "incomplete":
        new["complete"] = False
    else:
        new["results"].pop()
    base, n = _write(tmp_path, "b.json", SAMPLE), _write(tmp_path, "n.json", new)
    assert main(["compare", base, n]) == 1
    err = capsys.readouterr().err
    expect = {"empty": "holds no checks", "incomplete": "incomplete (complete: false)",
              "one-gone": "1 check(s) of"}[change]
    assert expect in err


# -- item 10: results files validated, no traceback --------------------------------------------------

def test_results_files_with_bad_bytes_or_fields_are_refused_clearly(tmp_path, capsys):
    (tmp_path / "latin1.json").write_bytes(b'{"schema": "caf\xe9"}')
    missing = copy.deepcopy(SAMPLE)
    del missing["results"][3]["status"]
    mistyped = copy.deepcopy(SAMPLE)
    mistyped["results"][5]["device"] = 7
    mistyped["environment"]["frameworks"] = ["torch"]
    cases = {
        "latin1.json": "not UTF-8",
        _write(tmp_path, "missing.json", missing): "results[3].status: missing",
        _write(tmp_path, "mistyped.json", mistyped): "results[5].device: must be a string, got int",
    }
    with pytest.raises(ResultsFileError, match=r"environment.frameworks: must be an object or null"):
        read_results(tmp_path / "mistyped.json")
    good = _write(tmp_path, "good.json", SAMPLE)
    for f, text in cases.items():
        f = str(tmp_path / f)
        for argv in (["report", f, "-o", str(tmp_path / "r.html")], ["compare", good, f],
                     ["merge", str(tmp_path / "m.json"), f]):
            assert main(argv) == 1, argv
            err = capsys.readouterr().err
            assert text in err and f in err and "Traceback" not in err, (argv, err)


# -- item 11: every path checked before starting --------------------------------------------------

def test_outputs_never_overwrite_inputs(tmp_path, capsys):
    a, b = _write(tmp_path, "a.json", SAMPLE), _write(tmp_path, "b.json", SAMPLE)
    before = (tmp_path / "b.json").read_text()
    for argv in (["report", a, "-o", a], ["compare", a, b, "--report", b], ["merge", a, a, b],
                 ["report", a, "--baseline", b, "-o", b]):
        assert main(argv) == 2, argv
        assert "it would be overwritten" in capsys.readouterr().err
    assert (tmp_path / "b.json").read_text() == before


def test_run_checks_paths_before_running(tmp_path, capsys, monkeypatch):
    """`--results <dir>` ran everything, then lost it; `--results X --report X`; a missing --known."""
    import pytest as pytest_mod

    monkeypatch.setattr(pytest_mod, "main", lambda *a, **k: pytest.fail("the run started"))
    out = tmp_path / "same.json"
    for argv, text in (
        (["--results", str(tmp_path)], "is a directory"),
        (["--results", str(out), "--report", str(out)], "is also the output --results"),
        (["--results", CASE], "is also the input --cases"),
        (["--results", str(out), "--known", str(tmp_path / "nope.yaml")], "--known"),
        (["--results", str(out), "--cases", str(tmp_path / "missing")], "no such file or directory"),
        (["--results", str(tmp_path / "f.txt" / "r.json")], "is not a directory"),
        (["--results", str(out), "--cases", str(tmp_path / "f.txt")], "not a case file"),
        (["--results", str(out), "--cases", str(tmp_path / "empty")], "no case files found"),
    ):
        (tmp_path / "empty").mkdir(exist_ok=True)
        if "f.txt" in argv[-1]:
            (tmp_path / "f.txt").write_text("x")
        assert main(["run", "--cases", CASE, "--frameworks", "numpy", *argv]) == 2, argv
        assert text in capsys.readouterr().err, argv


def test_run_uses_user_cache_for_jax_and_the_lock(tmp_path, monkeypatch):
    """Item 16: JAX's cache went to ./.jax_cache; the default is now the user's cache directory.
    Two runs on one results path: the second is refused while the first holds the lock."""
    import pytest as pytest_mod

    seen = {}

    def fake_main(args):
        seen["cache"] = os.environ.get("CONFORMANCE_JAX_CACHE")
        seen["second"] = main(["run", "--cases", CASE, "--frameworks", "numpy", "--results", str(res)])
        return pytest_mod.ExitCode.NO_TESTS_COLLECTED

    res = tmp_path / "r.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONFORMANCE_JAX_CACHE", raising=False)
    monkeypatch.setattr(pytest_mod, "main", fake_main)
    monkeypatch.chdir(tmp_path)
    # (the JAX adapter's process_environment: set for a run that asks for JAX)
    assert main(["run", "--cases", CASE, "--frameworks", "numpy,jax",
                 "--results", str(res)]) == 1
    assert seen["cache"] == str(tmp_path / "xdg" / "convt-conformance" / "jax")
    assert seen["second"] == 2  # refused (a usage error): the first run holds the lock
    assert not (tmp_path / ".jax_cache").exists()
    assert lock_output(str(res)) is None  # released when the first command returned
    release_locks()


def test_lock_refuses_a_second_writer(tmp_path):
    res = str(tmp_path / "r.json")
    assert lock_output(res) is None
    try:
        why = lock_output(res)
        assert why and "another run is writing this results file" in why and f"pid {os.getpid()}" in why
    finally:
        release_locks()
    assert lock_output(res) is None
    release_locks()


# -- item 12: argument types ----------------------------------------------------------------------

@pytest.mark.parametrize("argv, text", [
    (["run", "--check-timeout", "inf"], "finite number of seconds > 0"),
    (["run", "--check-timeout", "nan"], "finite number of seconds > 0"),
    (["run", "--check-timeout", "-5"], "finite number of seconds > 0"),
    (["run", "--check-timeout", "soon"], "is not a number of seconds"),
    (["run", "-n", "-3"], "whole number of workers >= 0"),
    (["run", "-n", "two"], "whole number of workers >= 0"),
    (["compare", "a", "b", "--error-growth", "nan"], "finite fraction"),
])
def test_bad_numbers_are_usage_errors(argv, text, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert text in capsys.readouterr().err


def test_good_numbers_pass():
    args = cli.build_parser().parse_args(["run", "-n", "auto", "--check-timeout", "0.5"])
    assert args.n == "auto" and args.check_timeout == 0.5
    assert cli.build_parser().parse_args(["run", "-n", "4"]).n == "4"


# -- item 16: housekeeping ------------------------------------------------------------------------

@pytest.mark.parametrize("mask, mode", [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)])
def test_results_file_mode_follows_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        write_results(tmp_path / "r.json", SAMPLE)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == mode


def test_broken_pipe_is_quiet(tmp_path):
    """`conformance compare A B | head` ended in a BrokenPipeError traceback."""
    a = _write(tmp_path, "a.json", SAMPLE)
    p = subprocess.Popen([sys.executable, "-m", "convt_conformance", "compare", a, a, "--exact"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    p.stdout.close()  # the reader is gone before anything is written
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert p.returncode == 1
