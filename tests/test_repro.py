"""Reproducers: the script of every known disagreement reproduces its finding in a fresh
interpreter (NumPy + the framework only); a passing check's script does not.

Everything comes from ``known_disagreements.yaml`` and ``cases/``: for each entry the smallest
matching case whose check is ``xfail`` with that entry's reason is run in-process with
``run_check``, its record turned into a script, and the scripts of one framework are run in one
subprocess (one framework import each). The entry of kind ``crash`` (XLA's float64 compile
abort) is not run in-process: its record is built as the run records a crash (no native call),
its call taken from the same case's float32 check, and its script must die in a subprocess.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from adapters import get_adapter
from conformance.cases import Case, load_cases
from conformance.check import base_record, run_check
from conformance.findings import check_id_of, kind_of
from conformance.known import KnownDisagreement, load_known
from conformance.repro import repro_script

ROOT = Path(__file__).resolve().parents[1]
TRIES = 600  # matching checks tried per entry, smallest case first (TF checks take ms)

_DRIVER = """
import runpy, sys
for path in sys.argv[1:]:
    print("=== " + path, flush=True)
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        print(f"SystemExit {exc.code}", flush=True)
"""


def _size(case: Case) -> tuple[int, int]:
    return int(np.prod(case.output_shape)) if not case.expected_error else 0, int(np.prod(case.input.shape))


def _integer_valued(case: Case) -> bool:
    """All tensors integer-valued: exact in every dtype, so no value finding can show."""
    return all(t is None or (t.random or {}).get("distribution") == "integers"
               or (t.values is not None and np.all(np.isfinite(t.values) & (t.values == np.round(t.values))))
               for t in (case.input, case.weight, case.bias))


def reproducible(adapter, api: str) -> bool:
    """Whether this column has reproducer support: its adapter writes the native call
    (``repro_call``), and it is a plain forward API. Gradient (``:grad_*``) and execution-path
    (``@...``) columns, and the ONNX and Keras adapters, have none yet (README "Findings and
    reproducers": their scripts say so instead of reproducing another call)."""
    from adapters.base import Adapter

    return type(adapter).repro_call is not Adapter.repro_call and ":grad_" not in api and "@" not in api


def _checks(entry: KnownDisagreement, cases: list[Case]):
    """(case, adapter, api, dtype) the entry can match, smallest case first (for a value
    entry: computed outputs of non-integer data only), in columns with reproducer support."""
    adapter = get_adapter(entry.adapter)
    value_kind = entry.kind == "value"
    for case in sorted((c for c in cases if fnmatch.fnmatchcase(c.id, entry.case)
                        and not (value_kind and (c.expected_error or _integer_valued(c)))), key=_size):
        for api in adapter.apis:
            if not reproducible(adapter, api) or not entry.matches_api(adapter.api_label(api, case.rank)) \
                    or not adapter.applies(case, api):
                continue
            for dtype in case.dtypes:
                if fnmatch.fnmatchcase(dtype, entry.dtype) and fnmatch.fnmatchcase("cpu", entry.device):
                    yield case, adapter, api, dtype


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> dict[str, list[tuple[str, Path, str]]]:
    """{framework: [(label, script path, expectation "reproduced" / "passes" / "crashes")]}."""
    known, problems = load_known(ROOT / "known_disagreements.yaml")
    assert not problems and known
    loaded = load_cases([ROOT / "cases"])
    cases = loaded.cases
    for c in cases:  # records store `file` relative to the repo root, as a run from there does
        object.__setattr__(c, "file", os.path.relpath(c.file, ROOT))
    out: dict[str, list] = defaultdict(list)
    tmp = tmp_path_factory.mktemp("repro")
    configured: set[str] = set()

    def write(rec: dict, case: Case, expect: str, native_call: dict | None = None) -> None:
        path = tmp / f"s{sum(map(len, out.values()))}.py"
        path.write_text(repro_script(rec, case, native_call))
        out[rec["adapter"]].append((f"{check_id_of(rec)} ({expect})", path, expect))

    stale = []
    for entry in known:
        tried = 0
        if entry.kind == "subnormal-flush":
            continue  # the script judges values by the tolerance; a flush-to-zero verdict it cannot give yet
        if entry.adapter not in ("*",) and not any(reproducible(get_adapter(entry.adapter), a)
                                                 for a in get_adapter(entry.adapter).apis):
            continue  # no reproducer support for that framework yet (reproducible())
        candidates = list(_checks(entry, cases))
        if not candidates:  # the entry matches no case any more, or only unsupported columns
            stale.append(f"{entry.case} / {entry.adapter} / {entry.api} / {entry.dtype}")
        for case, adapter, api, dtype in candidates:
            if adapter.name not in configured:
                adapter.configure("strict")
                configured.add(adapter.name)
            if entry.kind == "crash":  # never in-process: the process would die
                rec = base_record(case, adapter, api, "cpu", dtype, "strict")
                rec.update(status="xfail", underlying_status="crash", known={"reason": entry.reason})
                sibling = run_check(case, adapter, api, "cpu", "float32", "strict", [])
                assert sibling["native_call"], sibling["message"]
                write(rec, case, "crashes", sibling["native_call"])
                break
            rec = run_check(case, adapter, api, "cpu", dtype, "strict", known)
            if rec["status"] == "xfail" and rec["known"]["reason"] == entry.reason:
                write(rec, case, "reproduced")
                break
            tried += 1
            assert tried < TRIES, f"no xfail check found for the known disagreement on {entry.case} / {entry.adapter}"
    if stale:
        warnings.warn(f"known_disagreements.yaml entries that match no case: {'; '.join(stale)}", stacklevel=1)
    assert len(stale) < len(known)
    case = next(c for c in cases if c.id == "doc-basic-2x2")
    for name in ("numpy", "torch", "tensorflow", "jax"):  # a passing check of every API
        adapter = get_adapter(name)
        adapter.configure("strict")
        for api in adapter.apis:
            if adapter.applies(case, api) and reproducible(adapter, api):
                rec = run_check(case, adapter, api, "cpu", "float32", "strict", [])
                assert rec["status"] == "pass", rec["message"]
                write(rec, case, "passes")
    return dict(out)


def _sections(stdout: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("=== "):
            current = line[4:]
            parts[current] = ""
        elif current is not None:
            parts[current] += line + "\n"
    return parts


def test_known_disagreement_scripts_reproduce(scripts):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    procs = {}
    for fw, items in scripts.items():
        runnable = [str(p) for _, p, expect in items if expect != "crashes"]
        procs[fw] = subprocess.Popen([sys.executable, "-c", _DRIVER, *runnable], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    crashers = [(label, p) for items in scripts.values() for label, p, expect in items if expect == "crashes"]
    assert crashers, "known_disagreements.yaml has a crash entry (XLA's float64 compile abort)"
    for label, path in crashers:
        res = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, text=True, capture_output=True,
                             timeout=120)
        assert res.returncode != 0 and "REPRODUCED" not in res.stdout, (label, res.returncode, res.stdout)
        assert res.stdout.startswith("check: "), res.stdout
    for fw, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, (fw, stderr[-2000:])
        sections = _sections(stdout)
        for label, path, expect in scripts[fw]:
            if expect == "crashes":
                continue
            text = sections.get(str(path), "")
            last = text.strip().splitlines()[-1] if text.strip() else ""
            if expect == "reproduced":
                assert last == "REPRODUCED", (label, text, stderr[-1500:])
            else:
                assert last == "NOT REPRODUCED" and "outcome: pass" in text, (label, text, stderr[-1500:])
            assert "framework: " in text and "check: " in text


def test_every_kind_of_finding_is_covered(scripts):
    """The entries cover value, non-finite and accepted-invalid findings and a crash, and a
    passing check of every API: the test exercises every adapter's repro_call and every branch
    of the script."""
    labels = " ".join(label for items in scripts.values() for label, _, _ in items)
    assert {"reproduced", "passes", "crashes"} <= {e for items in scripts.values() for _, _, e in items}
    assert {"numpy", "torch", "tensorflow", "jax"} <= set(scripts)
    for name in ("numpy", "torch", "tensorflow", "jax"):
        adapter = get_adapter(name)
        for api in (a for a in adapter.apis if reproducible(adapter, a)):
            assert f"[{name}.{adapter.api_label(api, 2)}-" in labels or name == "numpy" and api == "scatter", api


def test_script_without_case_or_support_says_so():
    rec = {"case": "nope", "adapter": "torch", "api": "conv_transpose2d", "device": "cpu", "dtype": "float32",
           "status": "fail", "native_call": {"function": "torch.something_else"}}
    text = repro_script(rec, None)
    assert "NOT AVAILABLE" in text and "not found" in text
    case = next(c for c in load_cases([ROOT / "cases" / "documents"]).cases if c.id == "doc-basic-2x2")
    rec["case"] = case.id
    text = repro_script(rec, case)
    assert "no reproducer support" in text
    assert kind_of(rec) == "fail"
    for fw, fn in (("torch", "torch.nn.functional.conv_transpose2d; import os"), ("jax", "jax.lax.conv_transpose\n"),
                   ("tensorflow", "tf.nn.conv2d_transpose(x);"), ("numpy", "adapters.numpy_reference.conv_transpose_x")):
        rec.update(adapter=fw, native_call={"function": fn, "weight_permutation": [2, 3, 1, 0]})
        assert "no reproducer support" in repro_script(rec, case), fw  # never code from a results file
