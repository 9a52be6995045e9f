# Caseway's entry points. Every target sets up what it needs first (deploy/bootstrap.sh is quick when
# everything is already there), so each one works on a fresh clone.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$$HOME/.local/bin/uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit lint stack-up stack-down stack-status services-up services-down bench faults

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

lint:
	$(RUN) ruff check .
	$(RUN) mypy

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
