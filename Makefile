# ticketpulse developer commands. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help run test lint unit integration chaos soak bench assets runtime-deps system-deps kafka-jars clean test-faust-latest

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

runtime-deps: ## Java 17 and Maven (to fetch and run the Kafka broker), installed if missing
	@bash .ci/system-deps.sh --runtime

system-deps: ## runtime-deps, promtool (Debian's prometheus) and Chromium for the tests, if missing
	@bash .ci/system-deps.sh

kafka-jars: $(STAMP) runtime-deps ## fetch the Apache Kafka jars from Maven Central (cached)
	@$(BIN)/ticketpulse broker --fetch-only >/dev/null

run: $(STAMP) kafka-jars ## local broker + topics + one worker + live simulated traffic (Ctrl-C stops)
	$(BIN)/ticketpulse run

assets: $(STAMP) ## regenerate the recording rules and Grafana dashboards (commit the result)
	$(BIN)/python -m streams.ops.generate

lint: $(STAMP) ## ruff, ruff format --check, mypy
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy

unit: $(STAMP) system-deps ## the fast tests only (no broker)
	$(BIN)/pytest tests/unit -n auto

integration: $(STAMP) kafka-jars system-deps ## the tests against the real Kafka broker only
	$(BIN)/pytest -m integration

test: $(STAMP) kafka-jars system-deps lint ## install what is needed, lint, run every test (real broker included)
	$(BIN)/pytest tests/unit -n auto
	$(BIN)/pytest tests/integration

chaos: $(STAMP) kafka-jars system-deps ## the reliability matrix, rows 1-12, on the real broker -> docs/reliability.md (~5 min)
	$(BIN)/pytest tests/chaos -p no:cacheprovider -v

soak: $(STAMP) kafka-jars ## 1 h of live traffic at 70 % of the worker's rate -> docs/soak.csv, docs/soak.png
	$(BIN)/pip install --quiet -e '.[dev,soak]'
	$(BIN)/python -m streams.tools.soak

clean: ## remove the virtualenv and local data (broker, worker stores)
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .hypothesis

bench: $(STAMP) kafka-jars ## throughput of the worker vs Faust, aiokafka and a Quix Streams peer, 3 runs -> docs/performance.md (~20 min on 2 cores)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m streams.tools.bench

test-faust-latest: kafka-jars system-deps ## the integration suite and drift check on the newest faust-streaming (not in make test)
	$(PYTHON) -m venv .venv-faust-latest
	.venv-faust-latest/bin/pip install --quiet --upgrade pip
	.venv-faust-latest/bin/pip install --quiet -e '.[dev]'
	.venv-faust-latest/bin/pip install --quiet --upgrade faust-streaming
	@.venv-faust-latest/bin/python -c "from importlib.metadata import version as v; print('faust-streaming', v('faust-streaming'), '(pinned: 0.15.3)')"
	.venv-faust-latest/bin/pytest tests/unit/runtime/test_faust_drift.py tests/integration
