"""Known disagreements conditioned on the machine (`when:`, convt_conformance/model/env_facts.py): an entry
holds only where its facts do, so one CPU kind's finding is expected there and a correct result
elsewhere stays `pass`; the facts come from the CPU and from the frameworks themselves."""

from __future__ import annotations

import numpy as np
import pytest

from convt_conformance.adapters import Adapter, NativeCall, RunOutput, get_adapter
from convt_conformance.checking.check import run_check
from convt_conformance.library import KNOWN_FILE
from convt_conformance.loading.cases import load_cases
from convt_conformance.loading.known import load_known
from convt_conformance.model import env_facts
from convt_conformance.oracle.forward import conv_transpose_scatter
from tests.conftest import DATA, framework_available

CASE = load_cases([DATA / "probes"]).cases[0]


class _Off(Adapter):
    """Double: the reference plus one, and a fact it reports when ``fact`` is set."""

    name, apis = "factdouble", ("scatter",)

    def __init__(self, fact: str | None) -> None:
        self.fact = fact

    def facts(self):
        return [self.fact] if self.fact else []

    def run(self, case, api, device, dtype, x, w, b):
        y = conv_transpose_scatter(x, w, b, stride=case.stride, padding=case.padding,
                                   output_padding=case.output_padding, dilation=case.dilation, groups=case.groups)
        return RunOutput(np.asarray(y) + 1.0, dtype, NativeCall("double", "", "", "", ""), placed_on="cpu")


def _entries(tmp_path, when: str, strict: bool = True):
    path = tmp_path / "known.yaml"
    path.write_text("disagreements:\n  - id: e1\n    adapter: factdouble\n    reason: r\n"
                    "    versions: {numpy: '>=1'}\n    outcome: fail/value\n"
                    f"    when: {when!r}\n    strict: {str(strict).lower()}\n")
    entries, problems = load_known(path)
    assert not problems
    return entries


def test_an_entry_holds_only_where_its_adapter_reports_the_fact(tmp_path):
    known = _entries(tmp_path, "factdouble.off_by_one")
    rec = run_check(CASE, _Off("factdouble.off_by_one"), "scatter", "cpu", "float64", "strict", known)
    assert rec["status"] == "xfail" and rec["underlying_status"] == "fail" and rec["known"]["reason"] == "r"
    # another machine: the adapter does not report the fact, the same failure is unexpected
    env_facts._sources.clear()
    rec = run_check(CASE, _Off(None), "scatter", "cpu", "float64", "strict", known)
    assert rec["status"] == "fail", rec["status"]


@pytest.mark.parametrize("cpu", ["this", "avx2-only", "all"])
def test_negated_and_cpu_terms(tmp_path, monkeypatch, cpu):
    """A CPU term holds where the CPU has the flag: this machine's flags, and (so that both a flag
    held and one lacking are exercised on any machine) two made-up CPUs."""
    env_facts._sources.clear()
    assert run_check(CASE, _Off(None), "scatter", "cpu", "float64", "strict",
                     _entries(tmp_path, "!factdouble.off_by_one"))["status"] == "xfail"
    if cpu == "avx2-only":
        monkeypatch.setattr(env_facts, "cpu_flags", lambda: frozenset({"avx2"}))
    elif cpu == "all":
        monkeypatch.setattr(env_facts, "cpu_flags", lambda: frozenset(env_facts.ISA_FLAGS))
    flags = env_facts.cpu_flags()
    for flag in env_facts.ISA_FLAGS:
        want = "xfail" if flag in flags else "fail"
        assert env_facts.holds((flag,)) is (flag in flags) and env_facts.holds((f"!{flag}",)) is (flag not in flags)
        assert run_check(CASE, _Off(None), "scatter", "cpu", "float64", "strict",
                         _entries(tmp_path, flag))["status"] == want, flag


@pytest.mark.parametrize("when, why", [
    ("", "must name at least one fact"),
    ("amx_bf17", "unknown CPU flag"),
    ("Tensorflow.oneDNN", "is not a fact name"),
    ("a.b.c", "is not a fact name"),
    ("onednn.amx_bf17", "onednn. takes a CPU flag"),
])
def test_a_bad_when_is_a_problem_naming_the_entry(tmp_path, when, why):
    path = tmp_path / "known.yaml"
    path.write_text(f"disagreements:\n  - id: e1\n    versions: {{numpy: '>=1'}}\n    outcome: fail/value\n"
                    f"    reason: r\n    when: {when!r}\n")
    entries, problems = load_known(path)
    assert not entries and len(problems) == 1
    assert problems[0].startswith(f"{path}: disagreements[0] (e1): when: ") and why in problems[0], problems


_AMX_CPU = frozenset({"avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                      "amx_tile", "amx_int8", "amx_bf16"})


@pytest.mark.parametrize("cap, on, off", [
    (None, ["onednn.amx_bf16", "onednn.avx512_fp16", "!onednn.capped"], []),
    ("ALL", ["onednn.amx_bf16", "!onednn.capped"], []),
    ("avx512_core_bf16", ["onednn.avx512_bf16", "onednn.avx512_vnni", "onednn.capped", "amx_bf16"],
     ["onednn.amx_bf16", "onednn.avx512_fp16", "onednn.avx_vnni"]),
    ("AVX512_CORE_AMX", ["onednn.amx_bf16", "onednn.avx_vnni", "onednn.avx512_fp16"], ["onednn.capped"]),
    ("AVX2", ["onednn.avx2", "onednn.capped", "avx512f"], ["onednn.avx512f", "onednn.avx_vnni"]),
])
def test_onednn_facts_follow_the_cpu_isa_cap(monkeypatch, cap, on, off):
    """`onednn.<flag>`: the CPU has the flag and ONEDNN_MAX_CPU_ISA lets oneDNN use it (the plain
    flag stays the CPU's); `onednn.capped`: the cap leaves out a flag the CPU has."""
    monkeypatch.setattr(env_facts, "cpu_flags", lambda: _AMX_CPU)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    for term in on:
        assert env_facts.parse_when(term)[1] is None and env_facts.holds((term,)), term
    for term in off:
        assert not env_facts.holds((term,)) and env_facts.holds((f"!{term}",)), term


def test_the_older_cap_name_counts_and_an_unknown_level_caps_nothing(monkeypatch):
    monkeypatch.setattr(env_facts, "cpu_flags", lambda: _AMX_CPU)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert env_facts.onednn_cap() == "AVX2" and not env_facts.holds(("onednn.amx_bf16",))
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX10_9_FUTURE")
    assert env_facts.onednn_cap() is None and env_facts.holds(("onednn.amx_bf16",))


def test_every_when_of_the_shipped_file_parses():
    entries, problems = load_known(KNOWN_FILE)
    assert not problems
    assert any(e.when for e in entries)


def test_tensorflow_reports_its_onednn_state_as_tf_sees_it():
    """The fact is TF's own answer (IsMklEnabled), the same in configure's settings and facts()."""
    if not framework_available("tensorflow"):
        pytest.skip("tensorflow is not installed")
    a = get_adapter("tensorflow")
    settings = a.configure("strict")
    from tensorflow.python.util import _pywrap_util_port

    on = bool(_pywrap_util_port.IsMklEnabled())
    assert settings["onednn_custom_ops"] is on
    assert ("tensorflow.onednn_custom_ops" in a.facts()) is on


def test_torch_reports_the_dtypes_onednn_runs():
    if not framework_available("torch"):
        pytest.skip("torch is not installed")
    import torch

    a = get_adapter("torch")
    settings = a.configure("strict")
    want = {"bf16": torch.ops.mkldnn._is_mkldnn_bf16_supported(), "fp16": torch.ops.mkldnn._is_mkldnn_fp16_supported()}
    assert settings["onednn_dtypes"] == [d for d, yes in want.items() if yes and torch.backends.mkldnn.enabled]
    assert a.facts() == [f"torch.mkldnn_{d}" for d in settings["onednn_dtypes"]]


def test_noting_an_adapter_does_not_keep_it_alive():
    """(A Keras adapter kept alive keeps its backend children: one per test would pile up.)"""
    import gc
    import weakref

    a = _Off("factdouble.gone")
    env_facts.note_adapter(a)
    assert env_facts.holds(("factdouble.gone",))
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None and not env_facts.holds(("factdouble.gone",))


def test_the_controller_judges_cpu_and_onednn_terms_itself(monkeypatch):
    """The full run's warning about entries that matched nothing: an entry whose facts the
    controller can read (CPU flags, `onednn.*`) is warned about where they hold; one naming a
    framework's fact is not (the controller does not set frameworks up)."""
    from convt_conformance.run.finish import _holds_here

    monkeypatch.setattr(env_facts, "cpu_flags", lambda: _AMX_CPU)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert _holds_here(("amx_bf16", "onednn.capped", "!onednn.amx_bf16"))
    assert not _holds_here(("onednn.amx_bf16",))
    assert not _holds_here(("amx_bf16", "torch.mkldnn_bf16"))
