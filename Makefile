# Two entry points, each self-contained on a machine with only python3:
#   make demo  -> creates .venv, installs jaxlr, runs the main job
#   make test  -> creates .venv, installs jaxlr with its test extras, runs the whole suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KERAS_BACKEND := jax

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed-core
	$(BIN)/jaxlr demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -x -q -n auto --maxprocesses=4 --dist loadfile

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks

lint: $(VENV)/.installed-test
	$(BIN)/ruff check jaxlr tests experiments benchmarks
	$(BIN)/ruff format --check jaxlr tests experiments benchmarks

clean:
	rm -rf $(VENV)
