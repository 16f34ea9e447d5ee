# The two set-up commands of the README: `make smoke` (main job) and `make test` (test suite).
# Both create .venv and install ablate into it first, so they work on a fresh machine. The main job
# installs the runtime dependencies only; the tests, the linters and the bench's CI use add the dev
# extra (every tracker, the S3 test server, the linters, the notebook kernel) on top.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed
DEV := $(VENV)/.installed-dev

.PHONY: setup setup-dev smoke test lint bench clean-venv

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

# The house rules besides the tests: style (ruff), the rooms' layers (import-linter), dead code (vulture).
lint: $(DEV)
	$(BIN)/ruff check ablate models tests
	$(BIN)/ruff format --check ablate models tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture

# One torch thread per timed part, as docs/bench.md recommends: ratios on a shared machine hold
# better when ours and the baseline do not compete for the cores with each other.
bench: $(RUNTIME)
	$(BIN)/ablate bench --quick --threads 1

clean-venv:
	rm -rf $(VENV)
