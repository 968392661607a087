#!/usr/bin/env bash
# What the benchmarks need beyond the Python environment: wrk (Debian package), the load generator
# of bench/node_api.py. PostgreSQL and Redis come from scripts/services.sh.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "wrk is missing and this is not root: install the Debian package 'wrk'" >&2
  exit 1
fi
echo "installing wrk (Debian package) for the benchmarks ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
