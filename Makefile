# ML Models and something more Inc. — the MLOps platform. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
RUN := $(UV) run --frozen

##@ Getting started
help: ## List every target with its description
	@awk 'BEGIN {FS = ":.*## "} /^##@/ {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install the package and its pinned dependencies (uv.lock)
	$(UV) sync --frozen

##@ Local stack (native processes, no Docker)
local: install ## Start every service on 127.0.0.1 and print the URLs
	$(RUN) mlplatform local up

local-down: ## Stop every service of the local stack
	$(RUN) mlplatform local down

local-status: ## Show each service's state and health
	$(RUN) mlplatform local status

demo: install ## Start the local stack if needed and run the platform's whole loop
	$(RUN) mlplatform demo

##@ Quality
test: install ## Lint, type-check and run every test (unit, integration, e2e) on a real stack
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) pytest

lint: ## Lint and type-check only
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: ## Format the code and apply safe lint fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: help install local local-down local-status demo test lint format
