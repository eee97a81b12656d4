# The project's vocabulary. `make demo` and `make test` work on a fresh machine: each creates
# .venv and installs what it needs first (llama-cpp-python compiles from source the first
# time, about 8 minutes on 2 cores; pip caches the wheel after that).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BRIEF ?= examples/briefs/harbor-logistics.json
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench template serve clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --progress-bar off -e '.[dev,eval]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/deckgen generate $(BRIEF) --out out/$(basename $(notdir $(BRIEF))).pptx

test: $(STAMP) appsscript/node_modules/.installed
	cd appsscript && npm test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The Apps Script side: TypeScript checkJs against the Apps Script type definitions, and
# node's own test runner with stand-ins for SlidesApp, UrlFetchApp and PropertiesService.
appsscript/node_modules/.installed: appsscript/package.json appsscript/package-lock.json
	cd appsscript && npm ci --no-audit --no-fund
	touch $@

# Benchmarks (not tests: nothing fails on a number); writes bench/RESULTS.md in a few minutes.
bench: $(STAMP)
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check deckgen tests scripts
	$(BIN)/mypy deckgen

template: $(STAMP)
	$(BIN)/python scripts/make_default_template.py

serve: $(STAMP)
	$(BIN)/deckgen serve

clean:
	rm -rf $(VENV) out var build *.egg-info appsscript/node_modules
