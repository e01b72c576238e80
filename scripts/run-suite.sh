#!/usr/bin/env bash
# Run the conformance suite on CPU (all frameworks, strict precision) and write the HTML report.
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/conformance run --device cpu -n "${JOBS:-auto}" \
  --results reports/results.json --report reports/conformance.html "$@"
