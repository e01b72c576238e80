#!/usr/bin/env bash
# The GPU job behind `tox -e gpu`. Each framework gets its own venv so that CUDA majors never mix
# (PyPI's torch 2.14 wheels need CUDA 13 libraries, jax[cuda12] and tensorflow[and-cuda] CUDA 12;
# nvidia-cudnn-cu12 and -cu13 install into the same nvidia/cudnn path and break each other).
# For each framework: strict run (GPU and CPU checks), a second strict GPU run (run-to-run
# nondeterminism), and a default-precision GPU run; then the per-framework results are merged and
# compared. Fails loudly (--require-gpu, exit 2) when a framework sees no GPU.
# Environment: GPU_FRAMEWORKS (default "torch jax tensorflow"), PYTHON (default python3),
# GPU_VENVS (default .venv-gpu), plus CUDA_VISIBLE_DEVICES and the XLA/TF/JAX variables.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENVS=${GPU_VENVS:-.venv-gpu}
FRAMEWORKS=${GPU_FRAMEWORKS:-torch jax tensorflow}
export XLA_PYTHON_CLIENT_ALLOCATOR=platform TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
nvidia-smi || { echo "gpu.sh: nvidia-smi failed: no usable NVIDIA GPU/driver here" >&2; exit 2; }
mkdir -p reports
declare -A PKG=([torch]="torch" [jax]="jax[cuda12]" [tensorflow]="tensorflow[and-cuda]")
strict=() rerun=() default=() failed=0
for fw in $FRAMEWORKS; do
  venv="$VENVS/$fw"
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e . "${PKG[$fw]}"
  run() { "$venv/bin/conformance" run --frameworks "$fw" --require-gpu "$@"; }
  set +e
  run --device all --precision strict --results "reports/results-gpu-$fw-strict.json"; rc1=$?
  run --device gpu --precision strict --results "reports/results-gpu-$fw-strict-rerun.json" --no-probes; rc2=$?
  run --device gpu --precision default --results "reports/results-gpu-$fw-default.json" --no-probes; rc3=$?
  set -e
  for rc in $rc1 $rc2 $rc3; do
    [ "$rc" -ne 2 ] || { echo "gpu.sh: $fw saw no GPU" >&2; exit 2; }
    [ "$rc" -eq 0 ] || failed=1   # unexpected results: reported, and the job fails at the end
  done
  strict+=("reports/results-gpu-$fw-strict.json"); rerun+=("reports/results-gpu-$fw-strict-rerun.json")
  default+=("reports/results-gpu-$fw-default.json")
done
first=${FRAMEWORKS%% *}
C="$VENVS/$first/bin/conformance"
"$C" merge reports/results-gpu-strict.json "${strict[@]}"
"$C" merge reports/results-gpu-strict-rerun.json "${rerun[@]}"
"$C" merge reports/results-gpu-default.json "${default[@]}"
"$C" report reports/results-gpu-strict.json -o reports/conformance-gpu-strict.html
set +e
echo "== run-to-run (strict, GPU): any error change is flagged =="
"$C" compare reports/results-gpu-strict.json reports/results-gpu-strict-rerun.json --error-growth 0 \
  --report reports/gpu-nondeterminism.html; nondet=$?
echo "== strict vs default precision =="
"$C" compare reports/results-gpu-strict.json reports/results-gpu-default.json \
  --report reports/gpu-strict-vs-default.html
set -e
[ "$failed" -eq 0 ] || echo "gpu.sh: some GPU runs had unexpected results (see the reports)" >&2
exit $(( nondet || failed ))
