"""The GPU job (scripts/gpu.sh behind `tox -e gpu`) as far as a machine without a GPU can show it:
it stops loudly without a driver, every `conformance` call in it parses, and its whole flow runs
with a test double in which torch claims a GPU (tests/data/fake_gpu)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from convt_conformance.results.store import read_results
from tests.conftest import DATA, ROOT

GPU_SH = ROOT / "scripts" / "gpu.sh"


def test_gpu_script_stops_loudly_without_a_driver(tmp_path):
    """`tox -e gpu` (scripts/gpu.sh) must fail, not skip, where no NVIDIA driver answers."""
    if shutil.which("nvidia-smi"):
        pytest.skip("nvidia-smi is present: the no-driver failure cannot be shown here")
    env = {**os.environ, "GPU_VENVS": str(tmp_path / "venvs")}
    p = subprocess.run(["bash", str(GPU_SH)], cwd=ROOT, capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "no usable NVIDIA GPU" in p.stderr
    assert not (tmp_path / "venvs").exists()  # stopped before installing anything

"""The conformance run: pytest plugin, xdist, results file, exit codes, crash isolation."""



def test_gpu_script_calls_parse():
    """Every `conformance` call in scripts/gpu.sh parses (a bad flag there would only show on a GPU)."""
    import re
    import shlex

    from convt_conformance.cli.main import build_parser

    text = GPU_SH.read_text()
    calls = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(";")[0].split("||")[0].strip()
        if line.startswith("#"):
            continue
        m = re.search(r'(?:"\$\{C\[@\]\}"|\bconformance)\s+(devices|run|merge|report|compare)\b(.*)', line)
        if m:
            calls.append(m)
        m = re.search(r'^run (--.*)', line)
        if m:
            calls.append(re.match(r"(run)(.*)", "run " + m.group(1)))
    subs = sorted({m.group(1) for m in calls})
    assert subs == ["compare", "devices", "merge", "report", "run"], subs
    fill = {"$fw": "torch", '"$@"': "", '"${strict[@]}"': "a.json b.json", '"${rerun[@]}"': "a.json",
            '"${default[@]}"': "a.json"}
    for m in calls:
        rest = m.group(2)
        for k, v in fill.items():
            rest = rest.replace(k, v)
        args = [m.group(1), *shlex.split(rest)]
        if m.group(1) == "run":
            args += ["--frameworks", "torch"]  # the run() helper adds it
        build_parser().parse_args(args)  # SystemExit on an unknown flag


def test_gpu_script_whole_flow_with_a_fake_gpu(tmp_path):
    pytest.importorskip("torch")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_smi = bin_dir / "nvidia-smi"
    fake_smi.write_text("#!/bin/sh\necho 'Fake GPU (test double), 0.0'\n")
    fake_smi.chmod(0o755)
    reports = tmp_path / "reports"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GPU_PREINSTALLED": "1",
           "PYTHON": sys.executable, "GPU_FRAMEWORKS": "torch", "GPU_REPORTS": str(reports),
           "PYTHONPATH": str(DATA / "fake_gpu"), "CONFORMANCE_TEST_FAKE_GPU": "1"}
    # -n 2: under xdist only the workers collect, so what each framework saw must reach the controller
    p = subprocess.run(["bash", str(GPU_SH), "--cases", "src/convt_conformance/library/cases/documents", "-n", "2"], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for name in ("results-gpu-strict.json", "results-gpu-strict-rerun.json", "results-gpu-default.json",
                 "conformance-gpu-strict.html", "gpu-nondeterminism.html", "gpu-strict-vs-default.html"):
        assert (reports / name).is_file(), name
    strict = read_results(reports / "results-gpu-strict.json")
    assert {r["device"] for r in strict["results"]} == {"cpu", "gpu"}
    assert strict["environment"]["framework_devices"] == {"torch": ["cpu", "gpu"]}
    assert strict["environment"]["framework_settings"]["torch"]["torch.backends.cudnn.allow_tf32"] is False
    assert "Devices seen" in (reports / "conformance-gpu-strict.html").read_text()
    default = read_results(reports / "results-gpu-default.json")
    assert {r["device"] for r in default["results"]} == {"gpu"}
    assert {r["precision"] for r in default["results"]} == {"default"}
    assert "== run-to-run (strict, GPU)" in p.stdout and "regressions: 0" in p.stdout


def test_gpu_script_fails_when_a_framework_sees_no_gpu(tmp_path):
    """A driver answers but the framework sees no GPU (e.g. a CPU build): exit 2, nothing run."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho fake\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GPU_PREINSTALLED": "1",
           "PYTHON": sys.executable, "GPU_FRAMEWORKS": "torch", "GPU_REPORTS": str(tmp_path / "reports")}
    p = subprocess.run(["bash", str(GPU_SH)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "NO GPU visible to torch" in p.stderr and "gpu.sh: torch sees no GPU" in p.stderr
    assert not list((tmp_path / "reports").glob("results-*.json"))
