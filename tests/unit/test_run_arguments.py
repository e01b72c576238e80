"""`conformance run` refuses pytest arguments after `--` that would override its plugin's options:
its verdict is read from the results file it names, which must be the one written."""

from __future__ import annotations

import pytest

from convt_conformance.cli.main import main
from convt_conformance.cli.run import PLUGIN_MODULE, passthrough_problems
from convt_conformance.run.plugin_options import plugin_option_names


def test_the_plugins_options_are_read_from_its_own_addoption():
    names = plugin_option_names()
    assert {"--results", "--report", "--frameworks", "--known", "--check-timeout", "--setup-timeout",
            "--only-checks", "--preflight-json"} <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("extra, named", [
    (["--results", "b.json"], "--results"),
    (["-k", "x", "--results=b.json"], "--results"),
    (["--frameworks", "torch"], "--frameworks"),
    (["--report", "r.html"], "--report"),
    (["--known=k.yaml"], "--known"),
    (["--check-timeout", "0"], "--check-timeout"),
    (["--only-checks", "ids.json"], "--only-checks"),
    (["-p", f"no:{PLUGIN_MODULE}"], f"no:{PLUGIN_MODULE}"),
    ([f"-pno:{PLUGIN_MODULE}"], f"no:{PLUGIN_MODULE}"),
])
def test_an_option_of_the_plugin_after_dashdash_is_refused(extra, named):
    problems = passthrough_problems(extra)
    assert len(problems) == 1 and named in problems[0], problems


@pytest.mark.parametrize("extra", [[], ["-k", "doc and float32", "-vv"], ["-p", "tests.hang_plugin"],
                                   ["--tb=short", "-x"], ["-m", "numpy"], ["--junitxml", "j.xml"]])
def test_other_pytest_arguments_pass(extra):
    assert passthrough_problems(extra) == []


def test_run_with_results_after_dashdash_is_a_usage_error_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    code = main(["run", "--frameworks", "numpy", "--results", str(a), "--", "--results", str(b)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "conformance run: pytest argument '--results' after --: --results configures the run's plugin" in err
    assert not a.exists() and not b.exists()  # refused before anything ran
