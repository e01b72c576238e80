"""Case-file loading and validation: every problem, located, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from convt_conformance.cli.main import main
from convt_conformance.library import CASES_DIR
from convt_conformance.loading.cases import load_cases, load_file
from tests.conftest import DATA

BAD = DATA / "bad"
EXPECT = yaml.safe_load((DATA / "bad_expectations.yaml").read_text())


def test_shipped_cases_are_valid():
    result = load_cases([CASES_DIR])
    assert result.problems == []
    assert len(result.cases) >= 10
    assert len({c.id for c in result.cases}) == len(result.cases)


@pytest.mark.parametrize("fname", sorted(EXPECT))
def test_bad_file_reports_every_problem(fname):
    paths = [BAD / fname] if not fname.startswith("dup_id") else [BAD / "dup_id_a.yaml", BAD / fname]
    problems = [p for p in load_cases(paths).problems if p.file.endswith(fname)]
    rendered = [str(p) for p in problems]
    for case, key, text in EXPECT[fname]:
        hit = [p for p in problems if p.case == case and key in p.key and text in p.message]
        assert hit, f"no problem ({case!r}, {key!r}, {text!r}) among:\n" + "\n".join(rendered)
    for p in problems:
        assert str(p).startswith(str(BAD / fname))


def test_bad_file_keeps_good_cases():
    result = load_file(BAD / "ragged_and_shapes.yaml")
    assert [c.id for c in result.cases] == ["good-one"]


def test_validate_cli_exit_codes(capsys):
    assert main(["validate", str(CASES_DIR)]) == 0
    assert "OK:" in capsys.readouterr().out
    assert main(["validate", str(BAD)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "ragged_and_shapes.yaml: case cin-mismatch: cases[1]" in err


def test_unsafe_yaml_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.yaml"
    f.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    result = load_file(f)
    assert not marker.exists()
    assert "not valid YAML" in result.problems[0].message


def _write(tmp_path, text):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    return load_file(f)


def test_defaults_merge_flat_values_nan_inf_and_pairs(tmp_path):
    r = _write(tmp_path, """
defaults: {dtypes: [float64], tags: [t1], stride: 2}
cases:
  - id: c1
    input: {shape: [1, 1, 3], values: [1, .nan, -.inf]}
    weight: {shape: [1, 2, 2], values: [1, 2, 3, 4]}
    bias: {values: [0.5, -0.5]}
    padding: [[1, 0]]
    output_padding: [1]
    expected: {shape: [1, 2, 6]}
""")
    assert r.problems == []
    c = r.cases[0]
    assert c.dtypes == ("float64",) and c.tags == ("t1",) and c.stride == (2,)
    assert c.padding == ((1, 0),) and c.output_padding == (1,)
    x, w, b = c.tensors("float64")
    assert np.isnan(x[0, 0, 1]) and np.isneginf(x[0, 0, 2])
    assert w.shape == (1, 2, 2) and b.tolist() == [0.5, -0.5]


def test_random_is_deterministic_and_integers_inclusive(tmp_path):
    text = """
cases:
  - id: r1
    input: {random: {shape: [2, 3, 4, 5], distribution: integers, low: -2, high: 2, seed: 7}}
    weight: {random: {shape: [3, 1, 2, 2], distribution: normal, seed: 8}}
    expected: {shape: [2, 1, 5, 6]}
"""
    a = _write(tmp_path, text).cases[0]
    b = _write(tmp_path, text).cases[0]
    xa, wa, _ = a.tensors("float32")
    xb, wb, _ = b.tensors("float32")
    assert np.array_equal(xa, xb) and np.array_equal(wa, wb)
    assert set(np.unique(xa)) <= {-2, -1, 0, 1, 2} and {-2, 2} <= set(np.unique(xa))
    expected = np.random.default_rng(7).integers(-2, 2, (2, 3, 4, 5), endpoint=True)
    assert np.array_equal(xa, expected)


def test_error_case_accepts_invalid_configuration(tmp_path):
    r = _write(tmp_path, """
cases:
  - id: e1
    input: {random: {shape: [1, 1, 3, 3], distribution: uniform, seed: 1}}
    weight: {random: {shape: [1, 1, 2, 2], distribution: uniform, seed: 2}}
    stride: 2
    output_padding: 2
    expected: {error: true}
""")
    assert r.problems == []
    assert "output_padding[0]=2 must be smaller than max(stride, dilation)=2" in r.cases[0].invalid_reasons[0]


def test_limits_refuse_before_allocating_and_can_be_raised(monkeypatch):
    """A too-large case is refused at load time (nothing allocated); its variable raises the limit."""
    result = load_file(BAD / "too_large.yaml")
    assert [c.id for c in result.cases] == ["small-is-fine"]
    monkeypatch.setenv("CONFORMANCE_MAX_ELEMENTS", str(2**27))
    raised = load_file(BAD / "too_large.yaml")
    assert "huge-output" in [c.id for c in raised.cases]  # loaded; its tensors are generated lazily
    assert not any("huge-output" == p.case for p in raised.problems)


def test_limit_variables_are_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("CONFORMANCE_MAX_ELEMENTS", "lots")
    bad = load_file(BAD / "too_large.yaml")  # a located problem, not an exception (load_file never raises)
    assert [p.message for p in bad.problems] == ["CONFORMANCE_MAX_ELEMENTS='lots' is not an integer"]
    monkeypatch.delenv("CONFORMANCE_MAX_ELEMENTS")
    monkeypatch.setenv("CONFORMANCE_MAX_FILE_BYTES", "100")
    problems = load_file(CASES_DIR / "documents" / "d2l_transposed_conv.yaml").problems
    assert len(problems) == 1 and "file size in bytes" in problems[0].message
