# The project's vocabulary. `make demo` and `make test` work on a fresh machine: each creates
# .venv and installs what it needs first. The embedded runtime (llama-cpp-python) is compiled
# once by scripts/build_llama.sh for a portable CPU baseline (x86-64-v3: AVX2/FMA/F16C, no
# AVX-512, no AMX; no common library: under 2 minutes on 2 cores) into a wheel folder named
# after its version and build flags, and installed from there only (--only-binary): a wheel
# built with other flags, e.g. a -march=native one in pip's cache, is never picked up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BRIEF ?= examples/briefs/harbor-logistics.json
# the demo needs only the package; the tests also need the dev, eval and train extras
BASE := $(VENV)/.installed-base
STAMP := $(VENV)/.installed
PIP_LLAMA = --find-links "$$(cat $(VENV)/.llama-wheels)" --only-binary llama-cpp-python

.PHONY: install demo test render-tools browser-tools lint bench template serve clean adapter

$(BASE): setup.cfg pyproject.toml scripts/build_llama.sh scripts/llama_no_common.cmake
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	PYTHON=$(BIN)/python scripts/build_llama.sh > $(VENV)/.llama-wheels
	$(BIN)/python -m pip install --progress-bar off $(PIP_LLAMA) -e .
	touch $@

$(STAMP): $(BASE)
	$(BIN)/python -m pip install --progress-bar off $(PIP_LLAMA) -e '.[dev,eval,train,crm]'
	touch $@

install: $(STAMP)

# Exit 3 means the deck was written but not all of it is right; on the embedded model that
# is its weak prose being flagged where the brief does not support it: the demo still passes.
demo: $(BASE)
	@$(BIN)/deckgen generate $(BRIEF) --out out/$(basename $(notdir $(BRIEF))).pptx; rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "make demo: deck written; the embedded model's weak prose" \
	  "was flagged where the brief does not support it (exit 3, see above)"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

test: $(STAMP) appsscript/node_modules/.installed render-tools browser-tools
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

# tests/test_sidebar_browser.py opens the Apps Script sidebar in headless Chromium through
# Selenium (the dev extra); Debian's browser and driver, installed the same way as above.
BROWSER_PACKAGES := chromium chromium-driver
browser-tools:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(BROWSER_PACKAGES)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && \
	  apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; \
	else echo "note: install $(BROWSER_PACKAGES) to run the sidebar browser test"; fi

# Benchmarks (not tests: nothing fails on a number); writes bench/RESULTS.md in a few minutes.
bench: $(STAMP)
	$(BIN)/python bench/run.py

# A LoRA for the embedded model, trained on the CPU and converted to a GGUF adapter
# (DECKGEN_LOCAL_LORA) in var/adapter; `make adapter EVAL=1` also evaluates base against
# adapter on the held-out cases. About 45 minutes on 2 cores; bench/RESULTS.md section 10.
adapter: $(STAMP)
	PYTHON=$(BIN)/python DECKGEN=$(BIN)/deckgen sh training/embedded.sh var/adapter

lint: $(STAMP)
	$(BIN)/ruff check deckgen tests scripts bench training
	$(BIN)/mypy deckgen

template: $(STAMP)
	$(BIN)/python scripts/make_default_template.py

serve: $(STAMP)
	$(BIN)/deckgen serve

clean:
	rm -rf $(VENV) out var build *.egg-info appsscript/node_modules
