#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, then the linters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
.venv/bin/ruff check .
.venv/bin/mypy
# The PromQL of the alert rules (the unit tests check their metric names everywhere).
if command -v promtool >/dev/null; then
    promtool check config monitoring/prometheus.yml
fi
