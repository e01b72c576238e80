#!/usr/bin/env bash
# Run the project's own tests (and ruff, mypy, the import contracts) against the installed package.
# Installs Debian's chromium for the browser test when possible; without it that one test skips
# with a reason. Arguments go to pytest: `bash scripts/run-tests.sh -m "not e2e"` is the fast loop.
source "$(dirname "$0")/_venv.sh"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "run-tests: could not install chromium; the browser test will skip" >&2
fi
.venv/bin/ruff check src tests benchmarks scripts mutation
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
set +e
.venv/bin/python -m pytest tests -q "$@"
rc=$?
[ $rc -eq 5 ] && { echo "run-tests: pytest collected no tests" >&2; exit 1; }
exit $rc
