"""Case-file loading against hostile inputs: names of any form, files that are not regular files,
the YAML node limit applied while parsing, limits on every buffer the reference allocates, and the
NumPy formulations on values that overflow the dtype under test."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import convt_conformance
from convt_conformance.adapters.numpy.adapter import NumpyAdapter
from convt_conformance.checking.check import run_check
from convt_conformance.cli.main import main
from convt_conformance.loading import yaml_io
from convt_conformance.loading.cases import load_cases, load_file, read_case_list, write_case_list
from convt_conformance.loading.known import load_known
from convt_conformance.loading.yaml_io import TooManyNodes, count_nodes, load_yaml_file, read_bounded
from convt_conformance.model.status import Status
from convt_conformance.oracle import forward

CASE = """cases:
  - id: {cid}
    input: {{shape: [1, 1, 2], values: [[[1, 2]]]}}
    weight: {{shape: [1, 1, 2], values: [[[1, 1]]]}}
    expected: {{shape: [1, 1, 3]}}
"""
PACKAGE_PARENT = str(Path(convt_conformance.__file__).resolve().parent.parent)  # the package under test
ODD_NAMES = ("a::b.yaml", "x[1].yaml", "-dash.yaml", "sp ace.yaml", "new\nline.yaml")


def _within(seconds: float, fn, *args):
    """``fn(*args)`` run in a thread; fails the test (instead of hanging it) past ``seconds``."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"{fn.__name__} did not return within {seconds} s"
    return out[0]


# --- names ---------------------------------------------------------------------------------------

def test_case_files_of_any_name_load(tmp_path):
    """`a::b.yaml`, `x[1].yaml`, `-dash.yaml`... are case files like any other."""
    for i, name in enumerate(ODD_NAMES):
        (tmp_path / name).write_text(CASE.format(cid=f"odd-{i}"))
    result = load_cases([tmp_path])
    assert result.problems == []
    assert sorted(c.id for c in result.cases) == [f"odd-{i}" for i in range(len(ODD_NAMES))]


def test_case_list_keeps_every_name(tmp_path):
    """The list `conformance run` hands pytest instead of the names round-trips every name."""
    files = [tmp_path / n for n in ODD_NAMES] + [Path("relative/-x.yaml")]
    write_case_list(tmp_path / "list.json", files)
    assert read_case_list(tmp_path / "list.json") == [Path(os.path.abspath(f)) for f in files]


def test_known_disagreements_file_given_as_case_file_is_its_problem(tmp_path, capsys):
    """Given explicitly, a known_disagreements* file was loaded as cases by `validate` and dropped
    by `run`: it is now a located problem naming --known."""
    f = tmp_path / "known_disagreements_extra.yaml"
    f.write_text(CASE.format(cid="in-known-file"))
    result = load_file(f)
    assert result.cases == []
    assert [p.message for p in result.problems] == [
        "this is a known-disagreements file (its name starts with known_disagreements), not a case file; "
        "pass it with --known"]
    assert main(["validate", str(f)]) == 1
    assert "known_disagreements_extra.yaml: <file>: this is a known-disagreements file" in capsys.readouterr().err
    # a directory walk still leaves it out, silently
    (tmp_path / "good.yaml").write_text(CASE.format(cid="good"))
    walked = load_cases([tmp_path])
    assert walked.problems == [] and [c.id for c in walked.cases] == ["good"]


# --- regular files only, bounded reads -----------------------------------------------------------

def test_dev_zero_is_refused_not_read(tmp_path):
    """/dev/zero (here through a `.yaml` link, as a case file would name it, and as --known) was
    read forever: in a child process bounded in time and memory, so a regression cannot take the
    machine's memory."""
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
            "from convt_conformance.loading.cases import load_file\n"
            "from convt_conformance.loading.known import load_known\n"
            "print([p.message for p in load_file(sys.argv[1]).problems])\n"
            "print(load_known('/dev/zero'))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == [
        "['cannot read file: not a regular file (a character device)']",
        "([], ['/dev/zero: cannot read file: not a regular file (a character device)'])"]


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path, capsys):
    """A FIFO named like a case file (or given as --known) blocked the loader in open()."""
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result = _within(10, load_file, fifo)
    assert [str(p) for p in result.problems] == [f"{fifo}: <file>: cannot read file: not a regular file (a FIFO)"]
    assert _within(10, load_known, fifo)[1] == [f"{fifo}: cannot read file: not a regular file (a FIFO)"]
    assert _within(10, main, ["validate", str(fifo)]) == 1
    assert "not a regular file (a FIFO)" in capsys.readouterr().err


def test_a_file_is_read_up_to_the_byte_limit_whatever_its_size_says(monkeypatch):
    """A regular file whose size reads 0 (a /proc file) was read whole: now limit + 1 bytes at most."""
    monkeypatch.setenv("CONFORMANCE_MAX_FILE_BYTES", "10")
    assert os.stat("/proc/self/status").st_size == 0
    data, why = read_bounded("/proc/self/status")
    assert data is None
    assert why == "file size in bytes: more than 10 (CONFORMANCE_MAX_FILE_BYTES raises it)"


# --- the YAML node limit, while parsing ----------------------------------------------------------

def test_node_limit_stops_the_parse_before_any_node_is_built(tmp_path, monkeypatch):
    """A big file was composed and constructed whole (10 MB: 42 s and 1.8 GB) before the count."""
    monkeypatch.setenv("CONFORMANCE_MAX_YAML_NODES", "1000")
    f = tmp_path / "many.yaml"
    f.write_text("cases:\n  - id: a\n    input: {values: [" + ", ".join(["0"] * 200_000) + "]}\n")

    def never(text):
        raise AssertionError("the document was built although it is over the node limit")

    monkeypatch.setattr(yaml_io, "load_yaml", never)
    data, why = load_yaml_file(f)
    assert data is None
    assert why == "YAML nodes with aliases expanded: more than 1,000 (CONFORMANCE_MAX_YAML_NODES raises it)"


def test_node_count_expands_aliases_and_merges_once_per_key():
    """Aliases count as copies; a merge counts the keys it adds once (nested `<<: [*a, *a]`
    stays linear); an alias into its own node is refused."""
    assert count_nodes("a: &a [1, 2, 3]\nb: *a\n", 100) == 11  # map, 2 keys, 2 lists of 4
    assert count_nodes("a: &a {x: 1}\nb: {<<: [*a, *a]}\n", 100) == count_nodes("a: &a {x: 1}\nb: {<<: *a}\n", 100) + 1
    levels = "".join(f"l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}], k{i}: 1}}\n" for i in range(1, 30))
    assert count_nodes("l0: &l0 {k0: 1}\n" + levels, 10_000) < 10_000
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(TooManyNodes):
        count_nodes(laughs, 2**22)
    for recursive in ("a: &a [*a]\n", "a: &a {b: *a}\n"):
        with pytest.raises(TooManyNodes):
            count_nodes(recursive, 100)


# --- limits on the reference's own buffers -------------------------------------------------------

HUGE_DILATION = """cases:
  - id: huge-dilation
    input: {shape: [1, 1, 2], values: [[[1, 2]]]}
    weight: {shape: [1, 1, 2], values: [[[1, 1]]]}
    dilation: 100000000
    padding: [[50000000, 50000000]]
    expected: {shape: [1, 1, 2]}
  - id: huge-dilation-invalid
    input: {shape: [1, 1, 2], values: [[[1, 2]]]}
    weight: {shape: [1, 1, 2], values: [[[1, 1]]]}
    dilation: 100000000
    padding: [[50000000, 50000000]]
    output_padding: 100000000
    expected: {error: true}
"""


def test_small_case_with_a_huge_scatter_buffer_is_refused(tmp_path):
    """A 150-byte case whose padding crops a 1e8 dilation back validated, and made the reference
    allocate 800 MB per check: the uncropped buffers are under the element limit too, for an
    invalid case as well (a framework that accepts it computes it)."""
    f = tmp_path / "dil.yaml"
    f.write_text(HUGE_DILATION)
    result = load_file(f)
    assert result.cases == []
    for cid, extent in (("huge-dilation", 100_000_002), ("huge-dilation-invalid", 200_000_002)):
        msgs = [p.message for p in result.problems if p.case == cid]
        assert any(m.startswith("scatter buffer (uncropped") and f"[1, 1, {extent}] elements: {extent:,} is over "
                   "the limit of 16,777,216 (CONFORMANCE_MAX_ELEMENTS raises it)" in m for m in msgs), msgs
        assert any(m.startswith("padded zero-inserted input") for m in msgs), msgs


def test_work_buffers_are_what_the_reference_allocates(monkeypatch):
    """Every array the scatter and recipe allocate is the input, the output, or one of
    work_buffers (by element count): the bound is derived from the allocating code."""
    spec_kw = {"stride": [3, 2], "padding": [[2, 1], [0, 3]], "output_padding": [1, 0], "dilation": [2, 4],
               "groups": 2}
    x, w = np.ones((2, 4, 3, 5)), np.ones((4, 3, 2, 3))
    sizes: list[int] = []
    real_zeros, real_pad = np.zeros, np.pad
    monkeypatch.setattr(np, "zeros", lambda shape, *a, **k: (sizes.append(int(np.prod(shape))), real_zeros(shape, *a, **k))[1])
    monkeypatch.setattr(np, "pad", lambda arr, *a, **k: (lambda r: (sizes.append(r.size), r)[1])(real_pad(arr, *a, **k)))
    out = forward.conv_transpose_scatter(x, w, **spec_kw)
    forward.conv_transpose_recipe(x, w, **spec_kw)
    monkeypatch.setattr(np, "zeros", real_zeros)
    monkeypatch.setattr(np, "pad", real_pad)
    from convt_conformance.model.spec import ConvSpec

    spec = ConvSpec.of_call(x.shape, w.shape, None, **spec_kw)
    allowed = {out.size} | {int(np.prod(s)) for s in forward.work_buffers(spec).values()}
    assert sizes and set(sizes) <= allowed, (sizes, allowed)
    assert max(sizes) == max(int(np.prod(s)) for s in forward.work_buffers(spec).values())


# --- values that overflow the dtype under test ---------------------------------------------------

OVERFLOW = """cases:
  - id: overflow-input
    input: {random: {shape: [1, 2, 5], distribution: uniform, seed: 1, low: -100000, high: 100000}}
    weight: {random: {shape: [2, 2, 3], distribution: uniform, seed: 2}}
    stride: 2
    dtypes: [float16, float32]
    expected: {shape: [1, 2, 11]}
  - id: overflow-weight
    input: {random: {shape: [1, 2, 5], distribution: uniform, seed: 1}}
    weight: {shape: [2, 2, 3], values: [[[1.0e+5, 1, 1], [1, 1, 1]], [[1, 1, 1], [1, 1, 1]]]}
    stride: 2
    dtypes: [float16, float32]
    expected: {shape: [1, 2, 11]}
"""


def test_numpy_matrix_and_recipe_refuse_values_that_overflow_the_dtype(tmp_path):
    """Uniform values of 1e5 become Inf in float16: the matrix form (V's structural zeros times
    Inf) and the recipe (inserted zeros times Inf) gave NaN and failed against the scatter; they
    are now unsupported there with the reason, and still checked in float32."""
    f = tmp_path / "overflow.yaml"
    f.write_text(OVERFLOW)
    result = load_file(f)
    assert result.problems == []
    adapter = NumpyAdapter()
    adapter.configure("strict")
    for case, tensor in zip(result.cases, ("input", "weight")):
        assert case.nonfinite_tensors("float16") == (tensor,) and case.nonfinite_tensors("float32") == ()
        for api in ("matrix", "recipe"):
            rec = run_check(case, adapter, api, "cpu", "float16", "strict", [])
            assert rec.status is Status.UNSUPPORTED, (case.id, api, rec.status, rec.message)
            assert f"(in float16, {tensor} holds NaN or ±Inf)" in rec.message
            assert run_check(case, adapter, api, "cpu", "float32", "strict", []).status is Status.PASS
