#!/usr/bin/env bash
# A demo edge node that `make run` starts: wait for the control plane, enroll once, then run.
# Usage: scripts/demo-node.sh SERVER [NAME] [PORT]   (state in $EDGEFLEET_VAR_DIR/NAME)
set -u
SERVER=${1:-http://127.0.0.1:8000}
NAME=${2:-demo-node}
PORT=${3:-${DEMO_NODE_PORT:-8471}}
VAR=${EDGEFLEET_VAR_DIR:-var}
STATE=$VAR/$NAME
AGENT=.venv/bin/edgefleet-agent
for _ in $(seq 1 120); do
  curl -sf "$SERVER/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
if [ ! -f "$STATE/node.json" ]; then
  token_file=$VAR/$NAME-token
  # --token-file: a token on the command line would be in the process list for every user to see.
  "$AGENT" --state-dir "$STATE" enroll --server "$SERVER" --token-file "$token_file" --name "$NAME" \
    && rm -f "$token_file"
fi
mkdir -p "$STATE/sandbox/notes"
[ -f "$STATE/sandbox/notes/welcome.txt" ] || echo "Welcome to the edgefleet demo node." > "$STATE/sandbox/notes/welcome.txt"
exec "$AGENT" run --state-dir "$STATE" --listen "127.0.0.1:$PORT"
