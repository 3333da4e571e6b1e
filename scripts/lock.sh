#!/usr/bin/env bash
# Regenerate requirements.lock: pyproject.toml's runtime dependencies, every one pinned with
# the hashes of its files on PyPI, for the image's platform (linux x86_64, CPython 3.11).
# The image installs from it with --require-hashes (docs/decisions/0023).
#   bash scripts/lock.sh                               # after editing pyproject's dependencies
#   bash scripts/lock.sh --upgrade                     # every pin to the newest version allowed
#   bash scripts/lock.sh --upgrade-package temporalio  # one package (and what it needs)
# Elsewhere than linux x86_64 with Python 3.11, run it in the image's base:
#   docker run --rm -v "$PWD":/src -w /src python:3.11-slim bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
here=$("$python" -c 'import platform, sys; print(f"{sys.platform} {platform.machine()} {sys.version_info[0]}.{sys.version_info[1]}")')
if [ "$here" != "linux x86_64 3.11" ]; then
  echo "lock.sh: the lock is for the image (linux x86_64 3.11), this is $here; see the comment above" >&2
  exit 1
fi

# PyPI only, whatever this machine's pip configuration says (extra indexes, find-links,
# constraints): the lock must hold what the image's pip finds there.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_NO_INDEX PIP_CONSTRAINT

# pip-tools in a throwaway virtualenv, at a known version: the lock's format is stable.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools"
"$tools/bin/python" -m pip install -q "pip==25.2" "pip-tools==7.5.1"
"$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock "$@" pyproject.toml
