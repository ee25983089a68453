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

.PHONY: install system-deps demo test lint bench clean

install: $(STAMP)

# Debian packages the project needs (skipped when already installed): postgresql (the workstation
# tests start a real PostgreSQL server), chromium (the browser tests drive it with Playwright) and
# libgomp1 (OpenMP runtime of the LightGBM wheel), orthanc + orthanc-dicomweb (the DICOM/PACS
# tests and benchmark start a real Orthanc PACS).
SYSTEM_PACKAGES := postgresql chromium libgomp1 orthanc orthanc-dicomweb
system-deps:
	@if ! command -v dpkg >/dev/null; then echo "system-deps: not Debian; install $(SYSTEM_PACKAGES) yourself"; exit 0; fi; \
	missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# torch is installed first and alone: pinned to the CPU build, so nothing later pulls CUDA wheels.
$(STAMP): pyproject.toml requirements.lock | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: install
	$(VENV)/bin/meddx demo

test: install
	$(PY) -m pytest -q --durations=25

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

bench: install
	$(PY) benchmarks/medmnist_classification.py

clean:
	rm -rf $(VENV) .pytest_cache runs test-artifacts
