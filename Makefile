# The two commands of a new user: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Pins the tested torch/torchvision pair; on another CUDA stack: make install CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
PYTEST_ARGS ?=

.PHONY: install install-dev quickstart study publish publish-index test lint benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(PIP) install -q $(PIP_CONSTRAINTS) -e .

install-dev: $(BIN)/python
	$(PIP) install -q $(PIP_CONSTRAINTS) -e ".[dev]"

quickstart: install
	$(BIN)/waebench-train experiment=quickstart
	@echo "Results: $$(ls -td outputs/train/runs/* | head -1)"

# The comparison study (docs/study.md): 14 models x 1 seed on Fashion-MNIST (make study
# DATASET=mnist: on MNIST), then its page. Extra overrides: make study STUDY_ARGS="launcher=gpus
# trainer.accelerator=gpu". A failed job does not stop the page (it shows the failure); the
# exit status is the sweep's.
DATASET ?= fashion_mnist
STUDY := $(if $(filter fashion_mnist,$(DATASET)),fmnist_study,$(DATASET)_study)
STUDY_DIR ?= outputs/sweeps/$(STUDY)
STUDY_ARGS ?=
study:
	@test -f conf/sweep/$(STUDY).yaml || { echo "make study: DATASET=$(DATASET) has no study \
	(conf/sweep/$(STUDY).yaml); use DATASET=fashion_mnist or DATASET=mnist" >&2; exit 2; }
	$(BIN)/waebench-train -m sweep=$(STUDY) hydra.sweep.dir=$(STUDY_DIR) $(STUDY_ARGS); \
	status=$$?; \
	$(BIN)/waebench-report --page $(STUDY_DIR) --out $(STUDY_DIR)/page \
		--command 'make study DATASET=$(DATASET) STUDY_ARGS="$(STUDY_ARGS)"' && exit $$status

# Re-render the published page of a study (docs/results/<DATASET>/) from its runs (after
# `make study DATASET=...`), with the person's notes of docs/results/<DATASET>/notes.yaml;
# then the index docs/results/README.md from both studies, with the prose of
# docs/results/notes.md. PAGE_ARGS: more options of `waebench-report --page`.
RESULTS_DIR ?= docs/results
PAGE_ARGS ?=
INDEX_STUDIES ?= outputs/sweeps/mnist_study outputs/sweeps/fmnist_study
PAGE_NOTES = $(wildcard $(RESULTS_DIR)/$(DATASET)/notes.yaml)
publish:
	$(BIN)/waebench-report --page $(STUDY_DIR) --out $(RESULTS_DIR)/$(DATASET) \
		$(if $(PAGE_NOTES),--notes $(PAGE_NOTES),) --command 'make study DATASET=$(DATASET)' \
		$(PAGE_ARGS)

publish-index:
	$(BIN)/waebench-report --index $(INDEX_STUDIES) --out $(RESULTS_DIR) \
		$(if $(wildcard $(RESULTS_DIR)/notes.md),--notes $(RESULTS_DIR)/notes.md,)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pre-commit run --all-files

benchmark: install
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
