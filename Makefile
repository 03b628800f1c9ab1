# The two set-up commands of the README:
#   make demo   - install sweepdoc into .venv and run the main job (`sweepdoc demo`)
#   make test   - install dev tools, PostgreSQL and Chromium, then lint, type-check and test
#                 (the default suite, a few minutes; `make test-slow` runs the long tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Not `?=`: a PYTEST_ARGS in the environment (a CI runner's, a shell profile's) must not be
# able to deselect tests from `make test`; `make test PYTEST_ARGS=...` still works by hand.
PYTEST_ARGS :=

.PHONY: demo test test-slow install install-dev lint typecheck pytest system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

# The example plugin package (tests/plugins) too: the plugin tests train through its entry points.
install-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]' -e tests/plugins/sweepdoc_example_plugin

demo: install
	$(BIN)/sweepdoc demo

system-deps:
	bash scripts/system-deps.sh

lint: install-dev
	$(BIN)/ruff check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev system-deps
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test: lint typecheck pytest

# The long tests (the full demo, scale and load runs); CI runs them after `make test`.
test-slow: install-dev system-deps
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
