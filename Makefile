# Each target sets itself up on a fresh Debian machine: system tools through apt-get, Python
# packages into .venv. Nothing else needs to be installed first but Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages and the command that proves each is there.
APT_TOOLS := dcmtk:storescu dicom3tools:dciodvfy orthanc:Orthanc orthanc-dicomweb:/usr/share/orthanc/plugins/libOrthancDicomWeb.so postgresql:/usr/lib/postgresql npm:npm chromium:chromium poppler-utils:pdftoppm
# The OHIF viewer the node serves at /viewer/: the prebuilt dist/ of the npm package, checked
# against this digest, prepared into $(VIEWER_DIR) (git-ignored, never committed).
OHIF_VERSION := 3.13.2
OHIF_SHA256 := b189d3963bfc58e9394a9db8c7be75d07beb029ec211dbb126d47b62969dd3f1
VIEWER_DIR := ohif

.PHONY: all setup apt venv viewer test test-unit lint typecheck pytest run bench docs-images clean

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

# Fetched again only when the version changes (the marker file holds the prepared version).
viewer: apt venv
	@if [ "$$(cat $(VIEWER_DIR)/.echo-node-ohif 2>/dev/null)" != "$(OHIF_VERSION)" ]; then \
	  work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && \
	  (cd "$$work" && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null) && \
	  echo "$(OHIF_SHA256)  $$work/ohif-app-$(OHIF_VERSION).tgz" | sha256sum --check --quiet && \
	  $(BIN)/python -m echo_node.web.ohif "$$work/ohif-app-$(OHIF_VERSION).tgz" $(VIEWER_DIR); \
	fi

setup: apt venv viewer

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q -p no:cacheprovider

test: setup lint typecheck pytest

# The inner loop, in about two minutes: every test but those that start a real peer (dcmtk,
# Orthanc, PostgreSQL, a browser, the node as a process), run a neural network or are slow by
# design (markers set in tests/conftest.py and by the tests). `make test` still runs them all.
test-unit: venv
	$(BIN)/pytest -q -p no:cacheprovider -m "not peer and not model and not slow"

run: setup
	bash deploy/demo.sh

bench: setup
	$(BIN)/python -m benchmarks.run

# The README's example SR as dcmtk's dsr2html renders it, and a picture of it (Chromium).
docs-images: setup
	$(BIN)/python -m tests.sr_example docs/images

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache $(VIEWER_DIR)
