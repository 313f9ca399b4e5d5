# The two commands: `make lab` and `make test`. Everything else is what they need.
#
# On a machine without an NVIDIA GPU the CPU build of PyTorch is pinned by constraints-cpu.txt
# (an unpinned torch pulls a multi-GB CUDA build). Where `nvidia-smi` answers, no constraints
# file is used and pip installs the CUDA build; force either with `make install CONSTRAINTS=...`.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= $(if $(shell nvidia-smi -L 2>/dev/null),,constraints-cpu.txt)
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
STAMP := $(VENV)/.installed
NOTEBOOK_HOME := $(CURDIR)/.nbval-home

.PHONY: lab test install system-deps test-lib test-notebooks docs clean labextension

install: $(STAMP)

$(STAMP): pyproject.toml constraints-cpu.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(PIP_CONSTRAINTS) -e '.[all,test]'
	touch $(STAMP)

# JupyterLab rooted at the project, opening the tour; it prints a URL with a token. PORT=8899 picks the port.
lab: install
	$(BIN)/workbench lab $(if $(PORT),--port $(PORT),)

# Debian packages the tests use, installed only when missing: chromium for the browser tests,
# postgresql for the store tests. Without root (and no sudo) the tests that need them skip.
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then echo "not root: skipping apt-get install$$missing (those tests will skip)"; \
	  else echo "installing Debian packages:$$missing"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; fi; \
	fi

test: install system-deps
	$(MAKE) test-lib
	$(MAKE) test-notebooks

# The import contract and the typing of the core (pyproject.toml) before the tests.
test-lib:
	$(BIN)/lint-imports
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest; rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ]

test-notebooks:
	rm -rf $(NOTEBOOK_HOME) && mkdir -p $(NOTEBOOK_HOME)
	WORKBENCH_HOME=$(NOTEBOOK_HOME) $(BIN)/python -m pytest -p no:cacheprovider --nbval notebooks \
	  --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout=300 -o testpaths=notebooks; \
	  rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ]

# The notebooks rendered as HTML in site/, with links between pages checked (exit 1 on a broken one).
docs: install
	$(BIN)/python scripts/build_docs.py

# Rebuild the prebuilt JupyterLab extension (committed under workbench/labextension, so `pip
# install` needs no Node.js). Needs Node.js 20 and the npm registry.
labextension: install
	cd labextension && npm ci --no-audit --no-fund && PATH=$(CURDIR)/$(BIN):$$PATH npm run build:prod
	$(BIN)/python -m pip install --no-deps -e .

clean:
	rm -rf $(VENV) $(NOTEBOOK_HOME) site build dist
