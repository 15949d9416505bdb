# Two entry points: `make run` materializes the justETF reference flow, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup run test test-slow test-fast test-compat conformance lint format bench ui clean

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

# Two pytest workers (pytest-xdist), one test module per worker at a time: most of a test's time is
# one SQLMesh or Dagster subprocess, so the second core was idle (docs/adr/0020).
TEST_WORKERS ?= 2
test: setup
	bash scripts/install_browser.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -ra --durations=30 -n $(TEST_WORKERS) --dist loadgroup -m "not slow" \
		$(PYTEST_ARGS)

# Tests of minutes each, kept out of `make test` (CI) for its 30-minute budget: the benchmark
# harness's deployed, graphql and postgres scenarios at tiny sizes.
test-slow: setup
	$(BIN)/python -m pytest -ra -m slow $(PYTEST_ARGS)

# The oldest SQLMesh and Dagster releases we support (ADR 16), in a venv of their own: the unit
# tests, SQLMesh's error paths as we read them, and a run of each kind (failures and audits,
# a refused destructive change, restatement, a run without a plan, partitions, a plan preview).
# `make test` runs everything on the pinned versions (constraints.txt).
COMPAT_VENV := .venv-compat
COMPAT_STAMP := $(COMPAT_VENV)/.installed
COMPAT_TESTS := tests/unit tests/integration/child/test_sqlmesh_errors.py \
	tests/integration/run/test_execution.py::test_failure_isolation_statuses_checks_and_views \
	tests/integration/child/test_environments.py::test_destructive_change_to_prod_is_refused_unless_allowed \
	tests/integration/child/test_environments.py::test_a_destructive_change_sqlmesh_finds_only_when_migrating_is_refused_naming_the_model \
	tests/integration/run/test_execution.py::test_restatement_by_run_tag \
	tests/integration/child/test_restatement.py::test_a_model_below_that_fails_its_restatement_is_isolated \
	tests/integration/child/test_run_without_plan.py::test_a_blocking_audit_failure_is_reported_alike_by_run_and_plan \
	tests/integration/assets/test_partitions.py::test_range_restatement_recomputes_only_that_range \
	tests/integration/assets/test_observe.py::test_a_sqlmesh_run_outside_dagster_is_reported_once \
	tests/integration/assets/test_plan_preview.py::test_the_preview_shows_sqlmesh_s_own_plan_and_writes_nothing

$(COMPAT_STAMP): pyproject.toml constraints-oldest.txt
	rm -rf $(COMPAT_VENV)
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(COMPAT_VENV)/bin/python -m pip install --quiet -c constraints-oldest.txt -e ".[dev]"
	touch $(COMPAT_STAMP)

test-compat: $(COMPAT_STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@touch $(DAGSTER_HOME)/dagster.yaml
	@$(COMPAT_VENV)/bin/python -c "from importlib.metadata import version as v; \
		print('compat: sqlmesh', v('sqlmesh'), 'dagster', v('dagster'))"
	$(COMPAT_VENV)/bin/python -m pytest -ra --durations=10 -p no:cacheprovider \
		-n $(TEST_WORKERS) --dist loadgroup $(COMPAT_TESTS)

# Seconds: unit tests of the pure modules only (no SQLMesh Context, no DuckDB, no Dagster run).
test-fast: setup
	$(BIN)/python -m pytest -q tests/unit

# The code location against raw SQLMesh on twin projects (ADR 14): every fixed scenario (as CI),
# then SEEDS random scenarios (seeded, each a build and a few steps), every
# divergence printed; exit 1 on one not declared.
SEEDS ?= 20
CONFORMANCE_JOBS ?= 2
conformance: setup
	$(BIN)/python -m pytest -q -ra tests/conformance -k 'not random_seed'
	$(BIN)/python -m tests.conformance.random_runs --seeds $(SEEDS) --jobs $(CONFORMANCE_JOBS)

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup
	$(BIN)/dagster dev -w workspace.yaml

# Every benchmark scenario side by side in one table (docs/benchmarks.md, "Scenarios": defaults,
# options, how long); BENCH_ARGS="--scenarios ... --sizes ..." picks a subset.
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(DAGSTER_HOME) sqlmesh_project/.cache sqlmesh_project/warehouse
