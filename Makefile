# The two set-up commands of the README: `make smoke` (main job) and `make test` (test suite).
# Both create .venv and install ablate into it first, so they work on a fresh machine.
# The documentation site: `make docs` builds docs/ into site/ (Sphinx, strict), `make docs-check` opens
# it in headless Chromium, `make docs-gen` / `make docs-pictures` regenerate what the pages embed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup smoke test lint bench cluster clean-venv docs docs-check docs-gen docs-pictures

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

smoke: $(STAMP)
	$(BIN)/ablate run sweeps/smoke.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The house rules besides the tests: style (ruff), the rooms' layers (import-linter), dead code (vulture),
# and shellcheck on the bash of `ablate submit`'s job script (the binary comes with the dev extra).
lint: $(STAMP)
	$(BIN)/ruff check ablate models tests docs/conf.py docs/tools
	$(BIN)/ruff format --check ablate models tests docs/conf.py docs/tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture
	$(BIN)/shellcheck ablate/cluster/job.sh

# -W: any warning is an error (a broken link or anchor, a page in no table of contents, a stale
# generated reference, a sweep example that does not load, a flag no command has); -E: every page reread.
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -E -b html docs site
	@echo "site/index.html"

# The built site in headless Chromium (Debian's chromium, apt-installed when missing): no console
# errors on the start page, the config reference and the report page, and the search works.
docs-check: docs
	ABLATE_DOCS_SITE=site $(BIN)/python -m pytest -q -p no:cacheprovider tests/system/test_docs_site.py

# The config-key reference and the results schema in docs/config.md and docs/results.md, from the code.
docs-gen: $(STAMP)
	$(BIN)/python docs/tools/reference.py

# docs/_static/smoke/: the smoke sweep's table, figures and report as ablate makes them (runs the smoke sweep).
docs-pictures: $(STAMP)
	$(BIN)/python docs/tools/pictures.py

bench: $(STAMP)
	$(BIN)/ablate bench --quick

# The tests' 3-node SLURM cluster on this machine (network namespaces; needs root), until Ctrl-C.
cluster: $(STAMP)
	PYTHONPATH=tests $(BIN)/python -m helpers.netcluster

clean-venv:
	rm -rf $(VENV)
