# FireMode. `make run` serves the API; `make test` runs lint, types and the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
POETRY_VERSION := 2.5.1
TOOLS := .tools
POETRY := $(TOOLS)/bin/poetry
VENV_PY := .venv/bin/python
export POETRY_VIRTUALENVS_IN_PROJECT := true
export POETRY_NO_INTERACTION := 1

FIREMODE_TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
FIREMODE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export FIREMODE_TEST_DATABASE_URL FIREMODE_TEST_REDIS_URL
PYTEST := $(VENV_PY) -m pytest -p no:cacheprovider

.PHONY: install run demo-reset test lint test-sqlite test-postgres signoff bench clean

$(POETRY):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "poetry==$(POETRY_VERSION)"

.venv/.installed: pyproject.toml poetry.lock | $(POETRY)
	$(POETRY) install --no-interaction
	touch $@

install: .venv/.installed

run: install
	$(VENV_PY) -m src.app.cli db upgrade
	$(VENV_PY) -m src.app.cli demo seed --if-empty
	$(VENV_PY) -m src.app.cli serve

# The demo users' passwords are shown once by `make run`; this sets and prints new ones.
demo-reset: install
	$(VENV_PY) -m src.app.cli db upgrade
	$(VENV_PY) -m src.app.cli demo reset

lint: install
	.venv/bin/ruff check src tests bench migrations
	.venv/bin/ruff format --check src tests bench migrations
	.venv/bin/mypy
	.venv/bin/mypy bench

test-sqlite: install
	FIREMODE_TEST_BACKEND=sqlite $(PYTEST) -m "not postgres"

test-postgres: install
	FIREMODE_TEST_BACKEND=postgresql $(PYTEST)

test: lint test-sqlite test-postgres

signoff: install
	FIREMODE_TEST_BACKEND=sqlite $(POETRY) run pytest tests/test_phase2_final_validation.py -v

# Benchmarks print their figures; they need PostgreSQL and take minutes (see bench/README.md).
bench: install
	$(VENV_PY) -m bench.pagination
	$(VENV_PY) -m bench.merge_throughput
	$(VENV_PY) -m bench.results_load

clean:
	rm -rf .venv $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
