# Two commands set everything up on a machine that has only Python:
#   make demo   creates .venv, installs, runs the main job
#   make test   creates .venv, installs, runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-full bench install

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/sikka-supervisor demo

test: install
	$(BIN)/python -m pytest -q -m "not slow" -n 2  # two workers: the suite waits on real processes much of the time

test-full: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench
