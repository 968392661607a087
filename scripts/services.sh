#!/usr/bin/env bash
# Install (Debian packages) and start a real PostgreSQL and Redis on loopback for tests and benchmarks.
# Prints the DATABASE_URL and REDIS_URL to use. Idempotent; needs root (as CI and dev machines run).
set -euo pipefail
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
need=()
command -v pg_lsclusters >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need[@]}" >&2
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
  pg_createcluster "$ver" main --port "$PGPORT" >&2
fi
if ! pg_lsclusters -h | grep "^$ver main" | grep -q online; then
  pg_ctlcluster "$ver" main start >&2
fi
for _ in $(seq 1 30); do
  su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='edgefleet'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE edgefleet LOGIN SUPERUSER PASSWORD 'edgefleet'\"" >&2
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='edgefleet'\"" | grep -q 1 \
  || su postgres -c "createdb -O edgefleet edgefleet" >&2
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no >&2
  for _ in $(seq 1 30); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
echo "export DATABASE_URL=postgres://edgefleet:edgefleet@127.0.0.1:$port/edgefleet"
echo "export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
