#!/usr/bin/env bash
# The GPU job behind `tox -e gpu`. Each framework gets its own venv so that CUDA majors never mix:
# PyPI's torch 2.14.1 needs the CUDA 13 wheels (cuda-toolkit 13, nvidia-cudnn-cu13), jax[cuda12]
# and tensorflow[and-cuda] the CUDA 12 ones (nvidia-*-cu12), and nvidia-cudnn-cu12/-cu13 install
# into the same nvidia/cudnn path and break each other.
# For each framework: a strict run (GPU and CPU checks, convention probes), a second strict GPU run
# (run-to-run nondeterminism), a default-precision GPU run; then the per-framework results are
# merged and compared. It fails loudly, exit 2, where nvidia-smi fails or a framework sees no GPU
# (`conformance devices --require-gpu` before the long runs, `run --require-gpu` after each).
#
# Environment:
#   GPU_FRAMEWORKS  frameworks to run (default "torch jax tensorflow")
#   PYTHON          the interpreter the venvs are made from (default python3)
#   GPU_VENVS       where the venvs go (default .venv-gpu)
#   GPU_REPORTS     where results and reports go (default reports)
#   GPU_PIP_ARGS    extra pip arguments, e.g. "--no-index --find-links wheels/" on an offline machine
#   GPU_PREINSTALLED=1  no venvs and no installs: $PYTHON already holds CUDA builds of the
#                   frameworks and the project's dependencies (e.g. a machine image with torch and
#                   jax); the project is run from this checkout (PYTHONPATH)
#   CUDA_VISIBLE_DEVICES and the XLA_/TF_/JAX_ variables pass through.
# Arguments are passed to every `conformance run` (e.g. `-- -k doc-` or `--tags document`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENVS=${GPU_VENVS:-.venv-gpu}
R=${GPU_REPORTS:-reports}
FRAMEWORKS=${GPU_FRAMEWORKS:-torch jax tensorflow}
read -r -a PIP_ARGS <<<"${GPU_PIP_ARGS:-}"
# XLA: allocate on demand (one process per xdist worker shares the GPU); TF: grow, don't grab all.
export XLA_PYTHON_CLIENT_ALLOCATOR=${XLA_PYTHON_CLIENT_ALLOCATOR:-platform}
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
export TF_FORCE_GPU_ALLOW_GROWTH=${TF_FORCE_GPU_ALLOW_GROWTH:-true}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
nvidia-smi || { echo "gpu.sh: nvidia-smi failed: no usable NVIDIA GPU/driver here" >&2; exit 2; }
mkdir -p "$R"
# Pinned CUDA builds (the CPU pins are in pyproject.toml: same releases where PyPI has both).
declare -A PKG=([torch]="torch==2.14.1" [jax]="jax[cuda12]==0.10.2" [tensorflow]="tensorflow[and-cuda]==2.21.0")
strict=() rerun=() default=() failed=0
[ "${GPU_PREINSTALLED:-0}" != 1 ] || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
for fw in $FRAMEWORKS; do
  [ -n "${PKG[$fw]:-}" ] || { echo "gpu.sh: unknown framework '$fw' (torch, jax, tensorflow)" >&2; exit 1; }
  if [ "${GPU_PREINSTALLED:-0}" = 1 ]; then
    C=("$PY" -m convt_conformance)
  else
    venv="$VENVS/$fw"
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "${PIP_ARGS[@]}" --upgrade pip
    "$venv/bin/python" -m pip install -q "${PIP_ARGS[@]}" -e . "${PKG[$fw]}"
    C=("$venv/bin/conformance")
  fi
  echo "== $fw: devices =="
  "${C[@]}" devices --frameworks "$fw" --require-gpu || { echo "gpu.sh: $fw sees no GPU" >&2; exit 2; }
  run() { "${C[@]}" run --frameworks "$fw" --require-gpu "$@"; }
  set +e
  echo "== $fw: strict, GPU and CPU =="
  run --device all --precision strict --results "$R/results-gpu-$fw-strict.json" "$@"; rc1=$?
  echo "== $fw: strict, GPU, second run =="
  run --device gpu --precision strict --no-probes --results "$R/results-gpu-$fw-strict-rerun.json" "$@"; rc2=$?
  echo "== $fw: default precision, GPU =="
  run --device gpu --precision default --no-probes --results "$R/results-gpu-$fw-default.json" "$@"; rc3=$?
  set -e
  for rc in $rc1 $rc2 $rc3; do
    [ "$rc" -ne 2 ] || { echo "gpu.sh: $fw ran no check on the GPU" >&2; exit 2; }
    [ "$rc" -eq 0 ] || failed=1   # unexpected results: reported, and the job fails at the end
  done
  strict+=("$R/results-gpu-$fw-strict.json"); rerun+=("$R/results-gpu-$fw-strict-rerun.json")
  default+=("$R/results-gpu-$fw-default.json")
done
"${C[@]}" merge "$R"/results-gpu-strict.json "${strict[@]}"
"${C[@]}" merge "$R"/results-gpu-strict-rerun.json "${rerun[@]}"
"${C[@]}" merge "$R"/results-gpu-default.json "${default[@]}"
"${C[@]}" report "$R"/results-gpu-strict.json -o "$R"/conformance-gpu-strict.html
set +e
echo "== run-to-run (strict, GPU): any error change is flagged =="
"${C[@]}" compare "$R"/results-gpu-strict.json "$R"/results-gpu-strict-rerun.json --device gpu --exact \
  --report "$R"/gpu-nondeterminism.html; nondet=$?
echo "== strict vs default precision, GPU (findings, not a failure of this job) =="
"${C[@]}" compare "$R"/results-gpu-strict.json "$R"/results-gpu-default.json --device gpu \
  --report "$R"/gpu-strict-vs-default.html
set -e
[ "$failed" -eq 0 ] || echo "gpu.sh: some GPU runs had unexpected results (see the reports)" >&2
exit $(( nondet || failed ))
