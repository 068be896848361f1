# Each target sets itself up on a fresh Debian machine: system tools through apt-get, Python
# packages into .venv. Nothing else needs to be installed first but Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages and the command that proves each is there.
APT_TOOLS := dcmtk:storescu dicom3tools:dciodvfy orthanc:Orthanc orthanc-dicomweb:/usr/share/orthanc/plugins/libOrthancDicomWeb.so postgresql:/usr/lib/postgresql poppler-utils:pdftoppm

.PHONY: all setup apt venv test lint typecheck pytest run bench clean

all: test

apt:
	@missing=""; for pair in $(APT_TOOLS); do pkg=$${pair%%:*}; probe=$${pair#*:}; \
	  if [[ $$probe == /* ]]; then [ -e "$$probe" ] || missing="$$missing $$pkg"; \
	  else command -v "$$probe" >/dev/null || missing="$$missing $$pkg"; fi; done; \
	if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

setup: apt venv

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q -p no:cacheprovider

test: setup lint typecheck pytest

run: setup
	bash deploy/demo.sh

bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
