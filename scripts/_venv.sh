# Sourced by the scripts: create .venv with Python 3.11, install the dependencies (once per
# pyproject.toml) and the project itself as a regular, non-editable install (each time: about 2 s),
# so the tests and the suite run the installed package with its packaged data, as a user's would.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip setuptools
  .venv/bin/python -m pip install -q ".[all,test]"
  touch "$stamp"
fi
.venv/bin/python -m pip install -q --no-deps --no-build-isolation --force-reinstall . 2>&1 | grep -v "^WARNING: Location" || true
export TF_CPP_MIN_LOG_LEVEL=2
