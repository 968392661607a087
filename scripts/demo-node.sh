#!/usr/bin/env bash
# The demo edge node `make run` starts: wait for the control plane, enroll once, then run.
set -u
SERVER=${1:-http://127.0.0.1:8000}
STATE=${EDGEFLEET_VAR_DIR:-var}/demo-node
AGENT=.venv/bin/edgefleet-agent
for _ in $(seq 1 120); do
  curl -sf "$SERVER/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
if [ ! -f "$STATE/node.json" ]; then
  token_file=${EDGEFLEET_VAR_DIR:-var}/demo-node-token
  "$AGENT" --state-dir "$STATE" enroll --server "$SERVER" --token "$(cat "$token_file")" --name demo-node \
    && rm -f "$token_file"
fi
mkdir -p "$STATE/sandbox/notes"
[ -f "$STATE/sandbox/notes/welcome.txt" ] || echo "Welcome to the edgefleet demo node." > "$STATE/sandbox/notes/welcome.txt"
exec "$AGENT" --state-dir "$STATE" run --listen 127.0.0.1:${DEMO_NODE_PORT:-8471}
