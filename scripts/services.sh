#!/usr/bin/env bash
# Start PostgreSQL and Redis on 127.0.0.1 where they are not running yet, installing
# them from Debian's packages where they are missing. Safe to run again.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  echo "error: nothing listens on 127.0.0.1:$1 after 30s ($2)" >&2
  return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

start_postgres() {
  port_open 5432 && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL ..."
    apt_install postgresql
    # Local development only: trust connections from this machine.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/; s/^(local\s+all\s+\S+\s+)peer/\1trust/' "$hba"
    done
  fi
  echo "starting PostgreSQL ..."
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  wait_port 5432 PostgreSQL
}

start_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || { echo "installing Redis ..."; apt_install redis-server; }
  echo "starting Redis ..."
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
}

start_postgres
start_redis
