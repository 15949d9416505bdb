# Two entry points: `make run` materializes the justETF reference flow, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup run test test-fast conformance lint format bench ui clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@touch $(DAGSTER_HOME)/dagster.yaml

# Partitions are off by default (ADR 5): one unpartitioned run of every asset, SQLMesh fills
# whatever is missing and due.
run: setup
	$(BIN)/dagster asset materialize -m mxm_dagster.definitions --select '*'
	@$(BIN)/python -m mxm_dagster.justetf.where

test: setup
	bash scripts/install_browser.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -ra --durations=30 $(PYTEST_ARGS)

# Seconds: unit tests of the pure modules only (no SQLMesh Context, no DuckDB, no Dagster run).
test-fast: setup
	$(BIN)/python -m pytest -q tests/unit

# The code location against raw SQLMesh on twin projects (ADR 14): every fixed scenario (CI skips
# two for time), then SEEDS random scenarios (seeded, each a build and a few steps), every
# divergence printed; exit 1 on one not declared.
SEEDS ?= 20
conformance: setup
	MXM_CONFORMANCE_ALL=1 $(BIN)/python -m pytest -q -ra tests/conformance -k 'not random_seed'
	$(BIN)/python -m tests.conformance.random_runs --seeds $(SEEDS)

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup
	$(BIN)/dagster dev -w workspace.yaml

bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) sqlmesh_project/.cache sqlmesh_project/warehouse
