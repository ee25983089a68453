# meddx: `make demo` sets up and runs the main job; `make test` sets up and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The shared datasets sit beside the checkout; an explicit MEDDX_DATA_DIR wins.
ifneq ($(wildcard ../shared/data),)
export MEDDX_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install demo test lint bench clean

install: $(STAMP)

# torch is installed first and alone: pinned to the CPU build, so nothing later pulls CUDA wheels.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: install
	$(VENV)/bin/meddx demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

bench: install
	$(PY) benchmarks/medmnist_classification.py

clean:
	rm -rf $(VENV) .pytest_cache runs test-artifacts
