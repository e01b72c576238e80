"""Someone else's case files get the known disagreements their configurations match: the entries
describe configurations (groups > 1, output_padding at the stride below the dilation), not this
project's case ids."""

from __future__ import annotations

import importlib.util

import pytest

from convt_conformance.adapters import get_adapter
from convt_conformance.checking.check import run_check
from convt_conformance.library import KNOWN_FILE
from convt_conformance.loading.cases import load_file
from convt_conformance.loading.known import load_known
from convt_conformance.model.status import Status

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnx is not installed")

OUTSIDE = """
# written for this test, not part of the library: a grouped transposed convolution with two output
# channels per group (as in PyTorch's own test_conv_transpose_groups), and output_padding equal to
# the stride but below the dilation
cases:
  - id: their-grouped-dilated
    input: {shape: [1, 4, 3, 3], random: {shape: [1, 4, 3, 3], distribution: uniform, seed: 11}}
    weight: {shape: [4, 2, 2, 2], random: {shape: [4, 2, 2, 2], distribution: uniform, seed: 12}}
    groups: 2
    dilation: 2
    expected: {shape: [1, 4, 5, 5]}
  - id: their-outpad-at-stride
    input: {shape: [1, 1, 4, 4], random: {shape: [1, 1, 4, 4], distribution: uniform, seed: 13}}
    weight: {shape: [1, 1, 3, 3], random: {shape: [1, 1, 3, 3], distribution: uniform, seed: 14}}
    stride: 1
    dilation: 2
    output_padding: 1
    expected: {shape: [1, 1, 9, 9]}
  - id: their-plain
    input: {shape: [1, 2, 3, 3], random: {shape: [1, 2, 3, 3], distribution: uniform, seed: 15}}
    weight: {shape: [2, 3, 2, 2], random: {shape: [2, 3, 2, 2], distribution: uniform, seed: 16}}
    expected: {shape: [1, 3, 4, 4]}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("outside") / "theirs.yaml"
    path.write_text(OUTSIDE)
    loaded = load_file(path)
    assert loaded.problems == []
    known, problems = load_known(KNOWN_FILE)
    assert problems == []
    adapter = get_adapter("onnx")
    adapter.configure("strict")
    return {c.id: c for c in loaded.cases}, known, adapter


def _check(setup, case_id: str, api: str):
    cases, known, adapter = setup
    return run_check(cases[case_id], adapter, api, "cpu", "float32", "strict", known)


def test_onnx_reference_groups_entry_covers_their_grouped_case(setup):
    rec = _check(setup, "their-grouped-dilated", "ref.ConvTranspose")
    assert rec.status is Status.XFAIL, (rec.status, rec.message)
    assert rec.known["id"] == "onnx-ref-groups"
    assert _check(setup, "their-grouped-dilated", "ort.ConvTranspose").status is Status.PASS  # ORT is right


def test_onnxruntime_refusal_entry_covers_their_output_padding_case(setup):
    rec = _check(setup, "their-outpad-at-stride", "ort.ConvTranspose")
    assert rec.status is Status.XFAIL, (rec.status, rec.message)
    assert rec.known["id"] == "onnx-ort-outpad-at-stride" and rec.underlying_status is Status.ERROR


def test_a_case_no_entry_describes_gets_none(setup):
    for api in ("ref.ConvTranspose", "ort.ConvTranspose"):
        rec = _check(setup, "their-plain", api)
        assert rec.status is Status.PASS and rec.known is None, (api, rec.status, rec.message)
