"""Reproducers: the script of every known disagreement reproduces its finding in a fresh
interpreter (NumPy + the framework only); a passing check's script does not.

Everything comes from ``known_disagreements.yaml`` and ``cases/``: for each entry the smallest
case it names whose check is ``xfail`` by that entry is run in-process with ``run_check``, in
every column kind (plain forward, gradient, execution path, ONNX, Keras per backend; subnormal
flushes included), its record turned into a script, and the scripts of one framework (one Keras
backend) are run in one subprocess, each capped at SCRIPT_SECONDS. An entry that expects a
``crash`` is not run in-process: its record is built as the run records a crash (no native
call), its call taken from the same case's float32 check, and its script must die in a
subprocess; for a crash entry whose float32 check would die as well the adapter describes the
call without making it (Adapter.describe_call, ONNX's), else the entry is listed (a warning).
Columns without reproducer support are listed (NO_REPRODUCER): their scripts say so, and a
column that is neither supported nor listed fails the test.

Every entry that should show on this machine must be reproduced: its adapter installed, the
installed releases among those it was seen on (``versions``), its ``when`` facts holding here
and a case it names; such an entry whose checks no xfail of its own answers fails the test,
unless an earlier entry answers them or ELSEWHERE says why not (one CPU kind's finding that its
``when`` does not tell apart). Entries that name no case and crash entries no check survives are
listed (warnings).
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from convt_conformance.adapters import get_adapter
from convt_conformance.adapters.base import Adapter
from convt_conformance.adapters.registry import adapter_names
from convt_conformance.checking.check import base_record, run_check
from convt_conformance.library import CASES_DIR, KNOWN_FILE
from convt_conformance.loading.cases import Case, load_cases
from convt_conformance.loading.known import KnownDisagreement, load_known
from convt_conformance.loading.scope import where_holds
from convt_conformance.model.apis import gradient_quantity
from convt_conformance.model.check_id import Check
from convt_conformance.model.env_facts import holds, note_adapter
from convt_conformance.repro.common import COMMON_TAIL
from convt_conformance.repro.scripts import described_call, repro_script
from convt_conformance.results.findings import check_id_of, kind_of
from tests.conftest import ROOT

TRIES = 600  # matching checks tried per entry, smallest case first (TF checks take ms)
SCRIPT_SECONDS = 90  # cap on one script in the driver (a torch.compile or XLA compile included)
# Columns (adapter, api glob) with no reproducer yet: their scripts say "NOT AVAILABLE". None at
# present (Keras' numpy-backend gradient columns are unsupported: no check, so no finding, there).
# OpenVINO and LiteRT are inference runtimes: their gradient columns are always unsupported, never a finding
NO_REPRODUCER: tuple[tuple[str, str], ...] = (("openvino", "*:grad_*"), ("litert", "*:grad_*"))
# Scripts that must die in the call
CRASHING = ("crashes",)
# Passing checks, one per column: the first of these cases the column applies to and passes on
PASS_CASES = ("doc-basic-2x2", "edge-unreached-bias", "paths-2d-axis-pads-dilation")


# Entries (by id) that need not show here although their releases are installed and their
# `when` holds, and why
ELSEWHERE: dict[str, str] = {
    "torch-autocast-nonfinite-1": "one CPU kind's: oneDNN's bf16 ISA decides (AVX512_CORE: 1 of 7 columns), "
                                  "beyond its `when`",
}


def _crash_entry(entry: KnownDisagreement) -> bool:
    """Whether the entry expects the process to die (every outcome it expects is a crash)."""
    return all(o.startswith("crash") for o in entry.outcomes)


def _names_case(entry: KnownDisagreement, case: Case) -> bool:
    """Whether the entry concerns ``case`` (its ``case`` id and ``where`` conditions)."""
    return entry.case in ("*", case.id) and (not entry.where or where_holds(entry.where, case))


_DRIVER = """
import runpy, signal, sys
def _cap(signum, frame):
    raise TimeoutError("script ran past the cap")
signal.signal(signal.SIGALRM, _cap)
for path in sys.argv[2:]:
    print("=== " + path, flush=True)
    signal.alarm(int(sys.argv[1]))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        print(f"SystemExit {exc.code}", flush=True)
    except TimeoutError as exc:
        print(f"TIMEOUT {exc}", flush=True)
    finally:
        signal.alarm(0)
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
    (``repro_call``; for a ``:grad_*`` column ``repro_gradient_call``). Forward, gradient,
    execution-path (``@...``), ONNX and Keras columns have it; what has none is NO_REPRODUCER."""
    hook = "repro_gradient_call" if gradient_quantity(api) else "repro_call"
    return getattr(type(adapter), hook) is not getattr(Adapter, hook)


def _group(rec: dict) -> str:
    """One subprocess per framework, per Keras backend (Keras fixes its backend at import)."""
    return f"keras{rec['api'].split(']')[0]}]" if rec["adapter"] == "keras" else rec["adapter"]


def _crashes(known: list[KnownDisagreement], case: Case, adapter, api: str, dtype: str) -> bool:
    """Whether a crash entry covers the check on the installed releases (it would kill this
    process in-process)."""
    check = Check(case.id, adapter.name, adapter.api_label(api, case.rank), "cpu", dtype)
    return any(_crash_entry(e) and e.in_scope() and e.names(check, "strict", case) for e in known)


def _checks(entry: KnownDisagreement, cases: list[Case], known: list[KnownDisagreement]):
    """(case, adapter, api, dtype) the entry can match, the cases its reason names (e.g.) first,
    then smallest case first (for a value
    entry: computed outputs of non-integer data only), in columns with reproducer support,
    never a check that a crash entry covers (unless the entry is that crash entry)."""
    adapter = get_adapter(entry.adapter)
    value_kind = set(entry.outcomes) == {"fail/value"} and not entry.strict  # "integer-valued cases pass"
    named = set(re.findall(r"[a-z0-9][a-z0-9-]*[a-z0-9]", entry.reason))  # cases the reason names first
    for case in sorted((c for c in cases if _names_case(entry, c)
                        and not (value_kind and (c.expected_error or _integer_valued(c)))),
                       key=lambda c: (c.id not in named, _size(c))):
        for api in adapter.apis:
            if not reproducible(adapter, api) or not entry.matches_api(adapter.api_label(api, case.rank)) \
                    or not adapter.applies(case, api):
                continue
            for dtype in case.dtypes:
                if fnmatch.fnmatchcase(dtype, entry.dtype) and fnmatch.fnmatchcase("cpu", entry.device) and (
                        _crash_entry(entry) or not _crashes(known, case, adapter, api, dtype)):
                    yield case, adapter, api, dtype


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> tuple[dict[str, list[tuple[str, Path, str]]], list[str]]:
    """({group: [(label, script path, expectation "reproduced" / "passes" / "crashes")]}, the entries
    that should show here and did not)."""
    known, problems = load_known(KNOWN_FILE)
    assert not problems and known
    loaded = load_cases([CASES_DIR])
    cases = loaded.cases
    for c in cases:  # records store `file` relative to the repo root, as a run from there does
        object.__setattr__(c, "file", os.path.relpath(c.file, ROOT))
    out: dict[str, list] = defaultdict(list)
    tmp = tmp_path_factory.mktemp("repro")
    configured: set[str] = set()

    def configure(adapter: Adapter) -> None:  # once per framework (its settings are process-wide)
        if adapter.name not in configured:
            adapter.configure("strict")
            configured.add(adapter.name)

    def write(rec: dict, case: Case, expect: str, native_call: dict | None = None, how: str = "") -> None:
        path = tmp / f"s{sum(map(len, out.values()))}.py"
        path.write_text(repro_script(rec, case, native_call))
        out[_group(rec)].append((f"{check_id_of(rec)} ({expect}{how})", path, expect))

    stale, not_here, no_sibling, missing = [], [], [], []
    for entry in known:
        name = f"{entry.id} ({entry.adapter} / {entry.api} / {entry.dtype})"
        if entry.adapter not in adapter_names():
            not_here.append(f"{name} (adapter not installed)")
            continue
        if not entry.in_scope():  # another release's finding (e.g. onnxruntime 1.20.1's)
            not_here.append(f"{name} (seen on {entry.versions.describe()}; installed: {entry.versions.installed()})")
            continue
        candidates = list(_checks(entry, cases, known))
        if not candidates:  # the entry matches no case any more, or only unsupported columns
            stale.append(name)
        if entry.when and candidates:  # one CPU kind's finding: its facts decide whether it shows here
            case, adapter, api, dtype = candidates[0]
            configure(adapter)
            note_adapter(adapter)
            if not holds(entry.when) and not _crash_entry(entry):  # Keras' facts come from its backend children:
                run_check(case, adapter, api, "cpu", dtype, "strict", [])  # one check starts the one they use
            if not holds(entry.when):
                not_here.append(f"{name} (when: {' '.join(entry.when)}: not on this machine)")
                continue
        found = shadowed = False
        for tried, (case, adapter, api, dtype) in enumerate(candidates):
            assert tried < TRIES, f"no xfail check in {TRIES} tries for the known disagreement {name}"
            configure(adapter)
            if _crash_entry(entry):  # never in-process: the process would die
                dies_in_float32 = fnmatch.fnmatchcase("float32", entry.dtype)
                if dies_in_float32 and dtype != "float32":
                    continue  # the float32 check (the one that dies, not a dtype refusal)
                rec = base_record(case, adapter, api, "cpu", dtype, "strict").as_dict()
                rec.update(status="xfail", underlying_status="crash",
                           known={"reason": entry.reason, "issue": entry.issue, "id": entry.id})
                if dies_in_float32:  # no sibling survives: the adapter describes the call (describe_call)
                    call = described_call(rec, case)
                    if call is None:
                        no_sibling.append(name)
                        found = True
                        break
                else:
                    call = run_check(case, adapter, api, "cpu", "float32", "strict", [])["native_call"]
                    assert call, f"no native call from the float32 sibling of {name}"
                write(rec, case, "crashes", call, ", described" if dies_in_float32 else "")
                found = True
                break
            rec = run_check(case, adapter, api, "cpu", dtype, "strict", known)
            if rec["status"] == "xfail" and rec["known"]["id"] == entry.id:
                write(rec, case, "reproduced")
                found = True
                break
            shadowed = shadowed or rec["status"] == "xfail"  # matched by an earlier entry instead
        if candidates and not found:
            elsewhere = ELSEWHERE.get(entry.id)
            if not (shadowed or elsewhere):
                missing.append(name)
            not_here.append(name + (" (its xfail checks are an earlier entry's)" if shadowed else
                                    f" ({elsewhere})" if elsewhere else " (SHOULD SHOW HERE)"))
    if stale:
        warnings.warn(f"known_disagreements.yaml entries that name no case: {'; '.join(stale)}", stacklevel=1)
    if not_here:  # e.g. onnxruntime 1.20.1's entries (conformance releases onnxruntime --versions 1.20.1), CPU-ISA-specific ones
        warnings.warn(f"known disagreements that do not show with the installed frameworks: {'; '.join(not_here)}",
                      stacklevel=1)
    if no_sibling:
        warnings.warn(f"crash entries without a surviving sibling check (no native call to reproduce from): "
                      f"{'; '.join(no_sibling)}", stacklevel=1)
    by_id = {c.id: c for c in cases}
    for name in adapter_names():  # a passing check of every column with reproducer support
        adapter = get_adapter(name)
        adapter.configure("strict")
        for api in adapter.apis:
            if not reproducible(adapter, api):
                continue
            for cid in PASS_CASES:
                case = by_id[cid]
                if adapter.applies(case, api) and not adapter.supports(case, api, "cpu", "float32"):
                    rec = run_check(case, adapter, api, "cpu", "float32", "strict", [])
                    if rec["status"] == "pass":
                        write(rec, case, "passes")
                        break
    return dict(out), missing


@pytest.fixture(scope="module")
def scripts(survey) -> dict[str, list[tuple[str, Path, str]]]:
    return survey[0]


def test_every_entry_that_shows_here_is_found(survey):
    """Each entry whose adapter is installed, whose `when` holds here and that matches a case
    answers an xfail check with its own reason (its script then reproduces it:
    test_known_disagreement_scripts_reproduce), unless an earlier entry answers its checks or
    ELSEWHERE says why it need not show with the installed release."""
    _, missing = survey
    assert not missing, f"known disagreements that no longer show here: {'; '.join(missing)}"


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

    def run_group(items):
        runnable = [str(p) for _, p, expect in items if expect not in CRASHING]
        res = subprocess.run([sys.executable, "-c", _DRIVER, str(SCRIPT_SECONDS), *runnable], cwd=ROOT, env=env,
                             text=True, capture_output=True, timeout=SCRIPT_SECONDS * len(runnable) + 60)
        return res.returncode, res.stdout, res.stderr

    crashers = [(label, p, e) for items in scripts.values() for label, p, e in items if e in CRASHING]
    assert crashers, "known_disagreements.yaml has a crash entry (XLA's float64 compile abort)"
    for label, path, _ in crashers:
        res = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, text=True, capture_output=True,
                             timeout=120)
        assert res.stdout.startswith("check: "), res.stdout
        # died in the call: a signal or an exit status, or (a BLAS error handler's exit(0), MLX's zero
        # kernel) the process ended there without a word after it
        after = res.stdout.split("reproduces it", 1)[-1]
        returned = "framework raised:" in after or "REPRODUCED" in after
        assert (res.returncode != 0 or not returned) and "REPRODUCED" not in res.stdout, \
            (label, res.returncode, res.stdout)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two interpreters at a time: CI has 2 cores
        results = dict(zip(scripts, pool.map(run_group, scripts.values())))
    failures = []
    for group, (code, stdout, stderr) in results.items():
        assert code == 0, (group, stderr[-2000:])
        sections = _sections(stdout)
        for label, path, expect in scripts[group]:
            if expect in CRASHING:
                continue
            text = sections.get(str(path), "")
            last = text.strip().splitlines()[-1] if text.strip() else ""
            ok = (last == "REPRODUCED" if expect == "reproduced" else
                  last == "NOT REPRODUCED" and "outcome: pass" in text)
            if not ok or "framework: " not in text or "check: " not in text:
                failures.append(f"{label}: " + " | ".join(text.strip().splitlines()[-4:]))
    assert not failures, "\n".join(failures)


def test_every_kind_of_finding_is_covered(scripts):
    """The entries cover value, non-finite, subnormal-flush, error and accepted-invalid findings
    and a crash, in forward, gradient, execution-path, ONNX and Keras columns, and there is a
    passing check of every column with reproducer support: the test exercises every adapter's
    repro hooks and every branch of the script."""
    items = [(label, p, e) for group in scripts.values() for label, p, e in group]
    labels = " ".join(label for label, _, _ in items)
    assert {"reproduced", "passes", "crashes"} <= {e for _, _, e in items}
    reproduced = [(label, p.read_text()) for label, p, e in items if e == "reproduced"]
    kinds = {text.split("RECORDED = ", 1)[1].split()[0].strip("'") for _, text in reproduced}
    assert {"value", "nonfinite", "subnormal-flush", "error", "accepted-invalid"} <= kinds, kinds
    assert any(":grad_" in label for label, _ in reproduced)
    assert any("@" in label for label, _ in reproduced)
    assert any(".ort." in label or "[onnx.ort" in label for label, _ in reproduced)
    assert any("[keras." in label for label, _ in reproduced)
    assert any("[keras." in label and ":grad_" in label for label, _ in reproduced)
    # a crash no sibling check survives (onnxruntime on a 3-D zero extent): described by the adapter
    crashes = [label for label, _, e in items if e == "crashes" and ", described)" in label]
    assert any("[onnx." in label for label in crashes) or "onnx" not in adapter_names(), crashes
    for name in adapter_names():
        adapter = get_adapter(name)
        for api in (a for a in adapter.apis if reproducible(adapter, a)):
            label = adapter.api_label(api, 2)
            assert f"[{name}.{label}-" in labels or (name == "numpy" and api == "scatter") \
                or (name == "tensorflow" and api.endswith("@nchw")) \
                or (name == "keras" and label.startswith("[tensorflow]") and ":channels_first" in label) \
                or (name == "keras" and label.startswith("[numpy]") and ":grad_" in label) \
                or (name == "mlx" and api.endswith(":grad_bias") and not api.startswith("ConvTranspose")), \
                api  # unsupported (MLX's functions take no bias: only its layer has one)


def test_columns_without_reproducer_are_listed():
    """Every column is supported or listed in NO_REPRODUCER (no silent gaps), and the script of a
    listed column says that it is not available."""
    case = next(c for c in load_cases([CASES_DIR / "documents"]).cases if c.id == "doc-basic-2x2")
    unlisted = []
    for name in adapter_names():
        adapter = get_adapter(name)
        for api in adapter.apis:
            if reproducible(adapter, api):
                continue
            if not any(name == a and fnmatch.fnmatchcase(api, g) for a, g in NO_REPRODUCER):
                unlisted.append(f"{name}.{api}")
            rec = base_record(case, adapter, api, "cpu", "float32", "strict").as_dict()
            rec.update(status="fail", native_call={"function": "recorded call"})
            assert "NOT AVAILABLE" in repro_script(rec, case)
    assert not unlisted, f"columns without reproducer support, not in NO_REPRODUCER: {unlisted}"


def test_script_reference_gradients_are_the_suites():
    """The ~40-line definition reference in every script (scatter and the three gradients) gives
    the suite's reference values (convt_conformance/oracle/forward.py, gradients.py) on a grouped,
    strided, dilated, unequally padded 2-D case with output_padding, and on a 1-D case."""
    from convt_conformance.oracle import forward, gradients

    rng = np.random.default_rng(5)
    for shape_x, shape_w, kw in (
            ((2, 4, 3, 5), (4, 3, 2, 3), dict(stride=(2, 3), padding=((1, 0), (2, 1)), output_padding=(1, 0),
                                              dilation=(2, 1), groups=2)),
            ((1, 2, 6), (2, 1, 3), dict(stride=(1,), padding=((3, 2),), output_padding=(0,), dilation=(2,),
                                        groups=1))):
        x, w = rng.normal(size=shape_x), rng.normal(size=shape_w)
        b = rng.normal(size=(shape_w[1] * kw["groups"],))
        y = forward.conv_transpose_scatter(x, w, b, **kw)
        g = rng.normal(size=y.shape)
        env = {"np": np, "STRIDE": kw["stride"], "PADDING": kw["padding"], "OUTPUT_PADDING": kw["output_padding"],
               "DILATION": kw["dilation"], "GROUPS": kw["groups"], "G": g, "QUANTITY": None, "__name__": "t"}
        exec(COMMON_TAIL, env)  # noqa: S102 (the suite's own script text)
        np.testing.assert_allclose(env["reference"](x, w, b), y, rtol=1e-12, atol=1e-12)
        for q in gradients.GRADIENTS:
            env["QUANTITY"] = q
            want = gradients.gradient(q, x, w, g, **kw)
            np.testing.assert_allclose(env["reference"](x, w, b), want, rtol=1e-12, atol=1e-12)
            assert env["magnitude"](x, w, b).shape == want.shape


def test_script_without_case_or_support_says_so():
    rec = {"case": "nope", "adapter": "torch", "api": "conv_transpose2d", "device": "cpu", "dtype": "float32",
           "status": "fail", "native_call": {"function": "torch.something_else"}}
    text = repro_script(rec, None)
    assert "NOT AVAILABLE" in text and "not found" in text
    case = next(c for c in load_cases([CASES_DIR / "documents"]).cases if c.id == "doc-basic-2x2")
    rec["case"] = case.id
    text = repro_script(rec, case)
    assert "no reproducer support" in text
    assert kind_of(rec) == "fail"
    for fw, fn in (("torch", "torch.nn.functional.conv_transpose2d; import os"), ("jax", "jax.lax.conv_transpose\n"),
                   ("tensorflow", "tf.nn.conv2d_transpose(x);"), ("numpy", "convt_conformance.oracle.forward.conv_transpose_x"),
                   ("onnx", "onnxruntime.InferenceSession(ConvTranspose, opset 1; import os).run"),
                   ("keras", "keras.ops.conv_transpose (KERAS_BACKEND=jax); import os")):
        rec.update(adapter=fw, native_call={"function": fn, "weight_permutation": [2, 3, 1, 0]})
        assert "no reproducer support" in repro_script(rec, case), fw  # never code from a results file
    for fw, api, fn in (("torch", "conv_transpose2d:grad_input", "torch.autograd.grad(os.system('x'))"),
                        ("jax", "conv_transpose:grad_weight", "jax.vjp(jax.jit(jax.lax.conv_transpose), x, w)[1](g)[1];"),
                        ("tensorflow", "conv2d_transpose:grad_input", "tf.GradientTape: import os")):
        rec.update(adapter=fw, api=api, native_call={"function": fn, "weight_permutation": [2, 3, 1, 0]})
        assert "no reproducer support" in repro_script(rec, case), fw
    rec.update(adapter="torch", api="conv_transpose2d@compile",
               native_call={"function": "torch.compile(evil)", "arguments": {"path": "compile", "stride": [1, 1]}})
    assert "no reproducer support" in repro_script(rec, case)
    kwargs = {"stride": [1, 1], "padding": [0, 0], "output_padding": [0, 0], "groups": 1, "dilation": [1, 1],
              "device": "cpu", "dtype": "float32"}
    for fw, call, kw in (("torch", "os.system", kwargs), ("torch", "to_tensor", kwargs),  # a helper is no call
                         ("torch", "conv_transpose", {**kwargs, "device": object()}),
                         ("torch", "conv_transpose", {**kwargs, "x); import os; (": 1}),
                         ("onnx", "conv_transpose_model", {"attributes": {}, "opset": 1, "dtype": "float32"}),
                         ("numpy", "conv_transpose_x", {})):
        rec.update(adapter=fw, api="conv_transpose2d", native_call={"function": "torch.nn.functional.conv_transpose2d",
                                                                    "arguments": {"call": call, "call_kwargs": kw}})
        assert "no reproducer support" in repro_script(rec, case), (fw, call)
    rec.update(adapter="torch", api="conv_transpose2d", native_call={"function": 'x"""\nimport os', "arguments": {
        "call": "conv_transpose", "call_kwargs": {**kwargs, "device": 'cpu"""\nimport os'}}})
    script = repro_script(rec, case)
    assert "\nimport os" not in script and repr('cpu"""\nimport os') in script  # a string only as its repr
    rec.update(dtype="float32; import os", native_call={"function": "f", "arguments": {
        "call": "conv_transpose", "call_kwargs": kwargs}})
    assert "NOT AVAILABLE" in repro_script(rec, case)  # no record text as code, the dtype neither
    rec.update(dtype="float32", framework_version="2.13\nimport os")
    assert "\nimport os" not in repro_script(rec, case).split("import numpy as np")[0]
