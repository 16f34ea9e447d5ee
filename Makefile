# The two set-up commands of the README: `make smoke` (main job) and `make test` (test suite).
# Both create .venv and install ablate into it first, so they work on a fresh machine. The main job
# installs the runtime dependencies only; the tests, the linters, the docs and the bench's CI use add
# the dev extra (every tracker, the S3 test server, the linters, Sphinx, the notebook kernel) on top.
# The documentation site: `make docs` builds docs/ into site/ (Sphinx, strict), `make docs-check` opens
# it in headless Chromium, `make docs-gen` / `make docs-pictures` regenerate what the pages embed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed
DEV := $(VENV)/.installed-dev

.PHONY: setup setup-dev smoke test lint bench cluster clean-venv docs docs-check docs-gen docs-pictures

$(RUNTIME): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(DEV): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(DEV)

setup: $(RUNTIME)
setup-dev: $(DEV)

smoke: $(RUNTIME)
	$(BIN)/ablate run sweeps/smoke.yaml

test: $(DEV)
	$(BIN)/python -m pytest -q

# The house rules besides the tests: style (ruff), the rooms' layers (import-linter), dead code (vulture),
# and shellcheck on the bash of `ablate submit`'s job script (the binary comes with the dev extra).
lint: $(DEV)
	$(BIN)/ruff check ablate models tests docs/conf.py docs/tools
	$(BIN)/ruff format --check ablate models tests docs/conf.py docs/tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture
	$(BIN)/shellcheck ablate/cluster/job.sh

# -W: any warning is an error (a broken link or anchor, a page in no table of contents, a stale
# generated reference, a sweep example that does not load, a flag no command has); -E: every page reread.
docs: $(DEV)
	$(BIN)/python -m sphinx -W --keep-going -q -E -b html docs site
	@echo "site/index.html"

# The built site in headless Chromium (Debian's chromium, apt-installed when missing): no console
# errors on the start page, the config reference and the report page, and the search works.
docs-check: docs
	ABLATE_DOCS_SITE=site $(BIN)/python -m pytest -q -p no:cacheprovider tests/system/test_docs_site.py

# The config-key reference and the results schema in docs/config.md and docs/results.md, from the code.
docs-gen: $(DEV)
	$(BIN)/python docs/tools/reference.py

# docs/_static/smoke/: the smoke sweep's table, figures and report as ablate makes them (runs the smoke sweep).
docs-pictures: $(DEV)
	$(BIN)/python docs/tools/pictures.py

# One torch thread per timed part, as docs/bench.md recommends: ratios on a shared machine hold
# better when ours and the baseline do not compete for the cores with each other.
bench: $(RUNTIME)
	$(BIN)/ablate bench --quick --threads 1

# The tests' 3-node SLURM cluster on this machine (network namespaces; needs root), until Ctrl-C.
cluster: $(DEV)
	PYTHONPATH=tests $(BIN)/python -m helpers.netcluster

clean-venv:
	rm -rf $(VENV)
