#!/usr/bin/env bash
# Set up (if needed) and run the demo: a 3-step campaign through the local stack
# (Temporal dev server + Web UI, PostgreSQL, Redis, a worker, a local SMTP inbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/outreach demo "$@"
