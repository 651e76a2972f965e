# ML Models and something more Inc. — the MLOps platform. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv: the one on PATH, else a pinned one bootstrapped into a project-local tools venv
# (Debian's system Python refuses `pip install`: PEP 668; a venv works).
UV_VERSION := 0.13.8
TOOLS := .tools
PYTHON ?= python3
UV ?= $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
RUN := $(UV) run --frozen
# Only from the command line (`make test PYTEST_ARGS=...`), never silently from the environment.
PYTEST_ARGS :=
# EXECUTOR=celery|local (command line only): Airflow's executor for this one command, e.g.
# `make local EXECUTOR=celery` (a broker and AIRFLOW_WORKERS Celery workers). Default: .env's.
EXECUTOR :=
EXECUTOR_celery := CeleryExecutor
EXECUTOR_local := LocalExecutor
WITH_EXECUTOR = $(if $(EXECUTOR),AIRFLOW_EXECUTOR=$(or $(EXECUTOR_$(EXECUTOR)),$(error EXECUTOR=$(EXECUTOR): use celery or local)))

##@ Getting started
help: ## List every target with its description
	@awk 'BEGIN {FS = ":.*## "} /^##@/ {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Bytecode now, as the image does (UV_COMPILE_BYTECODE): otherwise the stack's first start
# compiles it, in four Airflow processes at once (cold start 46 s -> 24 s).
install: $(if $(findstring $(TOOLS)/bin/uv,$(UV)),$(TOOLS)/bin/uv) ## Install the package and its pinned dependencies (uv.lock)
	$(UV) sync --frozen --compile-bytecode

$(TOOLS)/bin/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is needed as $(PYTHON) (PYTHON=... to choose)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

doctor: install ## Check prerequisites, ports, memory and disk, and say what to fix (EXECUTOR=celery too)
	$(WITH_EXECUTOR) $(RUN) mlplatform doctor

##@ Local stack (native processes, no Docker)
local: install ## Start every service on 127.0.0.1 and print the URLs (EXECUTOR=celery: Celery workers)
	$(WITH_EXECUTOR) $(RUN) mlplatform local up

local-down: ## Stop every service of the local stack
	$(RUN) mlplatform local down

local-status: ## Show each service's state and health
	$(RUN) mlplatform local status

demo: install ## Start the local stack if needed and run the platform's whole loop
	$(WITH_EXECUTOR) $(RUN) mlplatform demo

##@ Pipelines
SOURCE ?= hungarian
deliver: ## Drop a hospital's file into the landing zone (SOURCE=hungarian|switzerland|va)
	$(RUN) mlplatform deliver $(SOURCE)

etl: ## Trigger the ETL DAG over Airflow's REST API and wait
	$(RUN) mlplatform trigger etl

train: ## Trigger the training DAG (N_TRIALS=... to override the setting) and wait
	$(RUN) mlplatform trigger train $(if $(N_TRIALS),--n-trials $(N_TRIALS))

retrain: ## Trigger the champion/challenger retraining DAG and wait
	$(RUN) mlplatform trigger retrain

monitor: ## Trigger the monitoring DAG (drift, live performance; retraining on degradation) and wait
	$(RUN) mlplatform trigger monitor

monitor-demo: ## Send shifted patients with their outcomes, run the monitor, show drift and retraining
	$(RUN) mlplatform monitor-demo

lineage: ## Print the champion's lineage: dataset version, deliveries, commit, params, metrics
	$(RUN) mlplatform lineage

.PHONY: deliver etl train retrain monitor monitor-demo lineage

##@ Serving
predict: ## POST one example patient to the running prediction service
	$(RUN) mlplatform predict-example

batch-drop: ## Upload 1,000 synthetic patients (and 2 bad rows) to batch/incoming/
	$(RUN) mlplatform batch-drop --rows 1000 --bad-rows 2

bench: ## Benchmark the service against `mlflow models serve` (needs the stack, a champion, wrk)
	$(RUN) python benchmarks/serving_bench.py

.PHONY: predict batch-drop bench

##@ Docker Compose
COMPOSE ?= docker compose
PROFILE ?= all
# S3=seaweedfs swaps MinIO for SeaweedFS, the S3 server the local stack runs.
DC = $(COMPOSE) -f docker-compose.yaml $(if $(filter seaweedfs,$(S3)),-f docker-compose.seaweedfs.yaml) --profile $(PROFILE)

up: ## Build and start the containers (PROFILE=all|storage|mlflow|airflow|serving, S3=seaweedfs)
	$(DC) up -d --build
	@echo "Airflow http://localhost:$${AIRFLOW_PORT:-8080} · MLflow http://localhost:$${MLFLOW_PORT:-5001} · S3 console http://localhost:$${MINIO_PORT_UI:-9001} · API http://localhost:$${FASTAPI_PORT:-8800}/docs  (make ps: health)"

down: ## Stop and remove the containers; the volumes (data) are kept
	$(DC) down --remove-orphans

logs: ## Follow the containers' logs (SERVICE=name for one)
	$(DC) logs -f --tail=200 $(SERVICE)

ps: ## List the containers with their state and health
	$(DC) ps --all

clean: ## Remove the containers AND their volumes (every database, bucket and log), after a warning
	@echo "WARNING: this deletes the volumes of PostgreSQL, S3, Valkey and the Airflow logs: all runs, models and lake data."
	@if [ "$(CONFIRM)" != yes ]; then read -r -p "Type yes to delete them: " answer && [ "$$answer" = yes ] || { echo "aborted"; exit 1; }; fi
	$(DC) down --volumes --remove-orphans

.PHONY: up down logs ps clean

##@ Quality
test: install chromium lint ## Lint, type-check, check the import contracts and run every test on a real stack
	@if [ -n "$(PYTEST_ARGS)" ]; then echo "pytest: a subset, PYTEST_ARGS=$(PYTEST_ARGS)"; fi
	$(RUN) pytest $(PYTEST_ARGS)

# The browser tests need Chromium: installed here when root with apt, else named; never skipped.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "== installing Chromium for the browser tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "Chromium is needed for the browser tests: run \`sudo apt-get install -y chromium\`"; exit 1; \
	  fi; }

lint: install ## Lint, type-check and check the layers' import contracts (import-linter)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

format: ## Format the code and apply safe lint fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: help install doctor local local-down local-status demo test chromium lint format
