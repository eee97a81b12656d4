# The project's vocabulary. `make demo` and `make test` work on a fresh machine: each creates
# .venv and installs what it needs first (llama-cpp-python compiles from source the first
# time, about 8 minutes on 2 cores; pip caches the wheel after that).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BRIEF ?= examples/briefs/harbor-logistics.json
STAMP := $(VENV)/.installed

.PHONY: install demo test render-tools lint bench template serve clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --progress-bar off -e '.[dev,eval,train]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/deckgen generate $(BRIEF) --out out/$(basename $(notdir $(BRIEF))).pptx

test: $(STAMP) appsscript/node_modules/.installed render-tools
	cd appsscript && npm test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The Apps Script side: TypeScript checkJs against the Apps Script type definitions, and
# node's own test runner with stand-ins for SlidesApp, UrlFetchApp and PropertiesService.
appsscript/node_modules/.installed: appsscript/package.json appsscript/package-lock.json
	cd appsscript && npm ci --no-audit --no-fund
	touch $@

# tests/test_render.py renders decks with LibreOffice and pdftoppm (Debian's packages) and
# checks no text lands outside its box; the fonts are the metric-compatible faces deckgen
# measures with. Installed when missing and this is a root shell with apt (CI); elsewhere it
# says what to install and the render test is skipped with the same message.
RENDER_PACKAGES := libreoffice-impress poppler-utils fonts-liberation fonts-crosextra-carlito
render-tools:
	@if command -v soffice >/dev/null && command -v pdftoppm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(RENDER_PACKAGES)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && \
	  apt-get install -y -q --no-install-recommends $(RENDER_PACKAGES) >/dev/null; \
	else echo "note: install $(RENDER_PACKAGES) to run the render test"; fi

# Benchmarks (not tests: nothing fails on a number); writes bench/RESULTS.md in a few minutes.
bench: $(STAMP)
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check deckgen tests scripts bench training
	$(BIN)/mypy deckgen

template: $(STAMP)
	$(BIN)/python scripts/make_default_template.py

serve: $(STAMP)
	$(BIN)/deckgen serve

clean:
	rm -rf $(VENV) out var build *.egg-info appsscript/node_modules
