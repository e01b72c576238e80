#!/usr/bin/env bash
# Download into .whl/ the project's dependencies that a GPU machine without package index access lacks
# (their image, Python 3.12, has torch and jax CUDA builds, pytest, pytest-xdist, PyYAML, Jinja2,
# ml_dtypes, numpy, but not jsonschema), for a machine with no package index. Then, there:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site GPU_PREINSTALLED=1 GPU_FRAMEWORKS="torch jax" bash scripts/gpu.sh
# (carry .whl; see README "tox -e gpu").
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${DEVICE_PYTHON_VERSION:-3.12}
rm -rf .whl && mkdir -p .whl
pip_dl() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$@"
}
pip_dl "jsonschema==4.26.0" "jsonschema-specifications==2025.9.1" "referencing==0.37.0" "rpds-py==2026.9.1"
ls -l .whl
