#!/usr/bin/env bash
# What `make run` does once, when the demo nodes are up, so that every page shows something real:
# questions to both nodes (metrics and events), a ticket that waits for an admin's approval on the
# Approvals page, and a staged rollout that finishes within a minute.
set -u
VAR=${EDGEFLEET_VAR_DIR:-var}
[ -f "$VAR/demo-activity.done" ] && exit 0
ports="${*:-8471 8472}"
last=${ports##* }
for port in $ports; do
  for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
done
ask() {  # ask PORT AGENT QUESTION; until the node has loaded its model, it answers with an error
  for _ in $(seq 1 100); do
    curl -sf -m 3700 "http://127.0.0.1:$1/v1/chat/completions" -H 'Content-Type: application/json' \
      -d "{\"model\": \"$2\", \"messages\": [{\"role\": \"user\", \"content\": \"$3\"}]}" \
      >/dev/null && return 0
    sleep 3
  done
}
for q in "What time is it?" "Say hello to the night shift." "Which notes do we have?" "What is an edge device?"; do
  for port in $ports; do ask "$port" "" "$q"; done
done
.venv/bin/python manage.py demo_rollout
# Last, a ticket for the service desk: its create_ticket call waits on the Approvals page (an hour
# at most); the node answers other requests after this one is decided.
ask "$last" desk "The printer in room 2 is broken and shows error E42." &
touch "$VAR/demo-activity.done"
wait
