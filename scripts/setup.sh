#!/usr/bin/env bash
# Set up a fresh machine for outreach: services running, a virtualenv with the project
# and its development tools. Safe to run again; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# The browser test drives Debian's Chromium (Playwright downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (for the Web UI test) ..."
  apt_install chromium
fi

# The TLS tests make throwaway certificates with the openssl CLI; they fail without it.
if ! command -v openssl >/dev/null; then
  echo "installing openssl (for the TLS tests) ..."
  apt_install openssl
fi

# The inbox tests start their own dovecot (IMAP) on a loopback port; no system service.
if [ ! -x /usr/sbin/dovecot ]; then
  echo "installing dovecot-imapd (for the inbox tests) ..."
  apt_install dovecot-imapd
  # The package starts a system service; the tests need none (they run their own).
  as_root service dovecot stop >/dev/null 2>&1 || true
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv ..."
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "installing outreach and its tools into .venv ..."
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
