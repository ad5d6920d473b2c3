# The README's commands. Every target creates .venv and installs the kit when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export MPLBACKEND ?= Agg

.PHONY: install prepare book test test-slow test-all lab clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install everything

prepare: $(STAMP)  ## build offline data and pretrained assets (idempotent)
	$(BIN)/ecmm prepare

book: prepare  ## main job: execute every notebook (full mode) and build the site
	$(BIN)/python book/build.py

test: prepare  ## unit tests + nbval of every notebook in quick mode (what CI runs)
	ECMM_QUICK=1 $(BIN)/python -m pytest -m "not slow and not book and not gpu and not network" \
		--nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider tests notebooks

test-book: prepare  ## build the book from quick-executed notebooks and check it in headless Chromium
	ECMM_QUICK=1 $(BIN)/python -m pytest -m book tests

test-slow: prepare  ## full-size checks
	$(BIN)/python -m pytest -m slow tests

lab: $(STAMP)  ## start JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf build book/_build book/notebooks
