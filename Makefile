# The two set-up commands of the README: `make smoke` (main job) and `make test` (test suite).
# Both create .venv and install ablate into it first, so they work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup smoke test lint bench cluster clean-venv

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
	$(BIN)/ruff check ablate models tests
	$(BIN)/ruff format --check ablate models tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture
	$(BIN)/shellcheck ablate/cluster/job.sh

bench: $(STAMP)
	$(BIN)/ablate bench --quick

# The tests' 3-node SLURM cluster on this machine (network namespaces; needs root), until Ctrl-C.
cluster: $(STAMP)
	PYTHONPATH=tests $(BIN)/python -m helpers.netcluster

clean-venv:
	rm -rf $(VENV)
