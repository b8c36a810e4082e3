# The two commands of a new user: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Pins the tested torch/torchvision pair; on another CUDA stack: make install CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
PYTEST_ARGS ?=

.PHONY: install install-dev quickstart test lint benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(PIP) install -q $(PIP_CONSTRAINTS) -e .

install-dev: $(BIN)/python
	$(PIP) install -q $(PIP_CONSTRAINTS) -e ".[dev]"

quickstart: install
	$(BIN)/waebench-train experiment=quickstart
	@echo "Results: $$(ls -td outputs/train/runs/* | head -1)"

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pre-commit run --all-files

benchmark: install
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
