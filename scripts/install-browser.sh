#!/usr/bin/env bash
# Debian's chromium and chromedriver for the dashboard's browser tests (make install runs this).
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "note: chromium/chromedriver missing and not root; the browser tests will be skipped" >&2
  exit 0
fi
echo "installing chromium and chromium-driver (Debian packages) for the browser tests ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 && apt-get install -y -qq chromium chromium-driver >&2
