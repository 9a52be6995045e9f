# Caseway's entry points. Every target sets up what it needs first (deploy/bootstrap.sh is quick when
# everything is already there), so each one works on a fresh clone.
SHELL := /bin/bash
# deploy/bootstrap.sh installs uv into ~/.local/bin when the machine has none.
export PATH := $(HOME)/.local/bin:$(PATH)
RUN := uv run --frozen
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit lint format stack-up stack-down stack-status services-up services-down bench faults

setup:
	@bash deploy/bootstrap.sh

## demo: the stack, the three services and a mail sink up; sample reports in; cases and notifications shown.
demo: setup
	$(RUN) caseway stack up
	$(RUN) caseway services up
	$(RUN) caseway demo

## test: the whole suite (unit, integration, e2e) against the real broker and database, then lint.
test: setup
	$(RUN) caseway stack up
	$(RUN) pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory lint

test-unit: setup
	$(RUN) pytest tests/unit $(PYTEST_ARGS)

## lint: formatting, ruff, mypy (strict), the import contract, and deploy/ validated offline (hadolint on the
## Dockerfile, the Compose schema, the Kustomize renders against Kubernetes and Strimzi schemas);
## `make format` applies the formatting.
lint:
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy
	$(RUN) lint-imports
	$(RUN) python -m caseway_ops.deploy_lint

format:
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

stack-up: setup
	$(RUN) caseway stack up

stack-down:
	$(RUN) caseway services down
	$(RUN) caseway stack down

stack-status:
	$(RUN) caseway stack status
	$(RUN) caseway services status

services-up: setup
	$(RUN) caseway services up

services-down:
	$(RUN) caseway services down

## bench: raw Kafka ceiling vs Caseway end to end, latency at 50/200/1000 reports/s, peak memory, on the
## load test's own stack (other ports); writes bench/results.json and bench/latency.png.
bench: setup
	$(RUN) caseway bench $(BENCH_ARGS)

## faults: the full fault suite under steady load (two replicas of every service, kill -9 of a replica of
## each service x5 and SIGTERM x7, a third replica started and stopped x2 each, Kafka killed -9 x3,
## PostgreSQL restarted x2, SMTP down 3 min, webhooks 500 for 1 min, poison 1 in 1,000; a team in 4 on
## digests, teams out of hours for part of the run, cases closed by staff as it goes, 15% of reports by
## address alone), then the invariants at the receivers and a replay; writes bench/faults.json. Options:
## FAULTS_ARGS (see `uv run caseway faults --help`).
faults: setup
	$(RUN) caseway faults $(FAULTS_ARGS)
