# The README's commands. Every target creates .venv and installs the kit when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export MPLBACKEND ?= Agg

.PHONY: install prepare book slides test test-gpu test-slow test-all lab clean

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

# Slides: reveal.js decks, one per notebook, that open offline. reveal.js, jQuery, require.js and
# MathJax 2 (SVG output: no web fonts to fetch) come from the npm registry once, into
# build/slides-vendor; the decks' own pages never reach the network. An executed copy (book/notebooks, written by
# `make book`) is used when there is one, so the decks show outputs; otherwise the source notebook.
SLIDES := book/_build/slides
SLIDES_VENDOR := build/slides-vendor
SLIDES_PACKAGES := reveal.js@4.6.1 jquery@3.7.1 requirejs@2.3.7 mathjax@2.7.9
SLIDES_FLAGS := --SlidesExporter.reveal_url_prefix=vendor/reveal.js \
	--SlidesExporter.jquery_url=vendor/jquery/jquery.min.js \
	--SlidesExporter.require_js_url=vendor/requirejs/require.js \
	--SlidesExporter.mathjax_url="vendor/mathjax/MathJax.js?config=TeX-AMS_SVG-full,Safe" \
	--template-file=$(CURDIR)/$(SLIDES_VENDOR)/offline.html.j2 \
	--SlidesExporter.reveal_scroll=True

# nbconvert's reveal template less the two blocks that always load from a CDN (mermaid: no notebook
# draws a diagram; the widget manager: widgets show their static figure).
define SLIDES_TEMPLATE
{%- extends 'reveal/index.html.j2' -%}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block jupyter_widgets %}{% endblock %}
endef
export SLIDES_TEMPLATE

$(SLIDES_VENDOR)/.installed: Makefile
	mkdir -p $(SLIDES_VENDOR)
	npm install --no-save --no-audit --no-fund --prefix $(SLIDES_VENDOR) $(SLIDES_PACKAGES)
	printf '%s\n' "$$SLIDES_TEMPLATE" > $(SLIDES_VENDOR)/offline.html.j2
	touch $@

slides: $(STAMP) $(SLIDES_VENDOR)/.installed  ## one reveal.js deck per notebook, offline, in book/_build/slides
	mkdir -p $(SLIDES)/vendor
	rm -rf $(SLIDES)/vendor/reveal.js
	cp -r $(SLIDES_VENDOR)/node_modules/reveal.js $(SLIDES)/vendor/
	mkdir -p $(SLIDES)/vendor/jquery $(SLIDES)/vendor/requirejs
	cp $(SLIDES_VENDOR)/node_modules/jquery/dist/jquery.min.js $(SLIDES)/vendor/jquery/
	cp $(SLIDES_VENDOR)/node_modules/requirejs/require.js $(SLIDES)/vendor/requirejs/
	rm -rf $(SLIDES)/vendor/mathjax
	mkdir -p $(SLIDES)/vendor/mathjax/jax/output
	cp -r $(addprefix $(SLIDES_VENDOR)/node_modules/mathjax/,MathJax.js config extensions localization) $(SLIDES)/vendor/mathjax/
	cp -r $(addprefix $(SLIDES_VENDOR)/node_modules/mathjax/jax/,element input) $(SLIDES)/vendor/mathjax/jax/
	cp -r $(SLIDES_VENDOR)/node_modules/mathjax/jax/output/SVG $(SLIDES)/vendor/mathjax/jax/output/
	for source in notebooks/[0-9][0-9]_*.ipynb; do \
		name=$$(basename $$source); \
		if [ -f book/notebooks/$$name ]; then source=book/notebooks/$$name; fi; \
		$(BIN)/jupyter nbconvert --to slides $(SLIDES_FLAGS) --output-dir $(SLIDES) $$source || exit 1; \
	done

# Test processes for `make test` (pytest-xdist; a notebook's cells stay in one process, in order).
TEST_WORKERS ?= 2

test: prepare  ## unit tests + nbval of every notebook in quick mode (what CI runs)
	ECMM_QUICK=1 $(BIN)/python -m pytest -m "not slow and not book and not gpu and not network" \
		-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider tests notebooks

test-book: prepare  ## build the book from quick-executed notebooks and check it in headless Chromium
	ECMM_QUICK=1 $(BIN)/python -m pytest -m book tests

test-gpu: prepare  ## every notebook under nbval in full mode on CUDA; writes build/notebook-times.md
	@if ! $(BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
		echo "make test-gpu: no CUDA device on this machine (torch.cuda.is_available() is False): skipped."; \
	else \
		ECMM_DEVICE=cuda ECMM_QUICK=0 PYTHONPATH=tests $(BIN)/python -m pytest -p nbval_timing --nbval-lax \
			--nbval-cell-timeout=3600 --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks; \
	fi

test-slow: prepare  ## full-size checks
	$(BIN)/python -m pytest -m slow tests

lab: $(STAMP)  ## start JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf build book/_build book/notebooks
