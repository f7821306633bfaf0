# jobrelay: `make` runs lint, types and tests; `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := all
.PHONY: all help install lint format types test jaeger run-traced unit integration run kafka-up kafka-down kafka-status postgres-up postgres-down postgres-status topics httpgen bench clean

all: test ## lint, type-check and test (the same as `make test`)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv and install jobrelay with its dev tools

lint: $(STAMP) ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff: fix what can be fixed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

types: $(STAMP) ## mypy --strict on libs, services, tests and bench
	$(BIN)/mypy

# The tests start the local Kafka broker when none answers (fetching it the first time) and
# stop it at the end if they started it; KAFKA_BOOTSTRAP_SERVERS points them elsewhere. The same
# for the local PostgreSQL (the stores' contract tests); JOBRELAY_TEST_POSTGRES_DSN points them elsewhere.
test: lint types jaeger ## lint, types, then every test against a real Kafka broker
	$(BIN)/pytest

# Jaeger is built with Go (a few minutes, once; cached in .cache/jaeger). Without Go the one
# test that asks Jaeger's API is skipped, and says so; the trace is still checked without it.
jaeger: $(STAMP) ## build the local Jaeger (Go toolchain) unless it is cached
	@if command -v go >/dev/null; then $(BIN)/jobrelay dev jaeger provision; \
	else echo "no Go toolchain: the Jaeger test will be skipped (install Go >= 1.24 to run it)"; fi

unit: $(STAMP) ## only the tests that need no broker
	$(BIN)/pytest tests/unit

integration: $(STAMP) ## only the tests against the real broker
	$(BIN)/pytest tests/integration

run: $(STAMP) ## run jobrelay locally: Kafka, topics, services (JOBRELAY_STORE=postgres: on PostgreSQL; Ctrl+C stops what it started)
	$(BIN)/jobrelay dev up

run-traced: $(STAMP) ## the same, plus Jaeger on 127.0.0.1:16686 receiving every service's traces
	$(BIN)/jobrelay dev up --jaeger

kafka-up: $(STAMP) ## start the local Kafka broker on 127.0.0.1:9092 (idempotent)
	$(BIN)/jobrelay dev kafka up

kafka-down: $(STAMP) ## stop the local Kafka broker started by kafka-up
	$(BIN)/jobrelay dev kafka down

kafka-status: $(STAMP) ## is a broker up, and is it ours?
	$(BIN)/jobrelay dev kafka status

# Debian's PostgreSQL (`apt-get install postgresql`), data in .cache/postgres; `JOBRELAY_STORE=postgres make run`
# puts the projector's view and the notifier's deliveries there (and starts it when needed).
postgres-up: $(STAMP) ## start the local PostgreSQL on 127.0.0.1:54329 with a jobrelay database (idempotent)
	$(BIN)/jobrelay dev postgres up

postgres-down: $(STAMP) ## stop the local PostgreSQL started by postgres-up
	$(BIN)/jobrelay dev postgres down

postgres-status: $(STAMP) ## is a PostgreSQL up on 127.0.0.1:54329, and is it ours?
	$(BIN)/jobrelay dev postgres status

topics: $(STAMP) ## create the four topics (idempotent)
	$(BIN)/jobrelay topics ensure

# The bench's HTTP load generator (bench/httpgen/httpgen.c, libc only) is compiled with the system's
# C compiler into .cache/httpgen (a second, once per source change); the HTTP scenarios need it.
httpgen: $(STAMP) ## build the bench's compiled HTTP load generator unless it is cached
	$(BIN)/python -m bench.httpgen

bench: $(STAMP) ## benchmarks against raw Kafka and Celery+Redis: one table, JSON and PNG in bench/results/
	command -v redis-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server; }
	command -v cc >/dev/null || { apt-get update -q && apt-get install -y -q gcc libc6-dev; }
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench.httpgen
	@ours=0; $(BIN)/jobrelay dev kafka status >/dev/null 2>&1 || ours=1; \
	$(BIN)/jobrelay dev kafka up && { $(BIN)/python -m bench $(BENCH_ARGS); rc=$$?; } || rc=$$?; \
	if [ $$ours = 1 ]; then $(BIN)/jobrelay dev kafka down; fi; exit $$rc

clean: ## remove the virtualenv and caches (keeps the Kafka jars in .cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
