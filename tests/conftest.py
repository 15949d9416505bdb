"""Shared fixtures: temporary copies of SQLMesh projects and ways to look into their warehouses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject

REPO = Path(__file__).resolve().parents[1]
FIXTURE_PROJECT = REPO / "tests" / "fixtures" / "faulty_project"
REFERENCE_PROJECT = REPO / "sqlmesh_project"
FAULTY_MODELS = ("broken.sql", "after_broken.sql", "blocked.sql", "after_blocked.sql")
VENV_BIN = Path(sys.executable).parent
#: The config.yaml of a one-file DuckDB project written at test time (warehouse.duckdb).
DUCKDB_CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      database: warehouse.duckdb
default_gateway: local
model_defaults:
  dialect: duckdb
disable_anonymized_analytics: true
"""


def pytest_configure(config: pytest.Config) -> None:
    """Under `make test`'s workers (pytest-xdist), each worker gets its own DAGSTER_HOME below
    the one make exports: no two test processes share a Dagster instance or our caches in it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    home = os.environ.get("DAGSTER_HOME")
    if worker and home:
        own = Path(home) / "workers" / worker
        own.mkdir(parents=True, exist_ok=True)
        (own / "dagster.yaml").touch()
        os.environ["DAGSTER_HOME"] = str(own)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One test module runs whole on one worker (`--dist loadgroup`), so its module fixtures are
    built once; tests/e2e is one group, since its modules share one `dagster dev`."""
    e2e = REPO / "tests" / "e2e"
    for item in items:
        group = "e2e" if e2e in item.path.parents else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


def copy_project(source: Path, dest: Path, drop: Iterable[str] = ()) -> Path:
    """A clean copy: no warehouse, no caches, optionally without some model files."""
    shutil.copytree(
        source, dest, ignore=shutil.ignore_patterns(".cache", "logs", "*.duckdb", "*.duckdb.wal")
    )
    for name in drop:
        (dest / "models" / name).unlink()
    return dest


def seed_external_source(project: Path) -> None:
    """The fixture's external table, as another system would have written it."""
    with duckdb.connect(str(project / "warehouse.duckdb")) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS src")
        connection.execute(
            "CREATE OR REPLACE TABLE src.readings AS "
            "SELECT range::INT AS reading_id, range * 1.5 AS value FROM range(5)"
        )


def grow_numbers(project: Path) -> None:
    """A breaking edit of the fixture's first model: raw.numbers grows from 1..10 to 1..20, so
    marts.healthy (twice their sum) becomes 420."""
    model = project / "models" / "numbers.sql"
    model.write_text(model.read_text().replace("GENERATE_SERIES(1, 10)", "GENERATE_SERIES(1, 20)"))


@pytest.fixture
def faulty_project(tmp_path: Path) -> Path:
    project = copy_project(FIXTURE_PROJECT, tmp_path / "faulty")
    seed_external_source(project)
    return project


@pytest.fixture
def clean_project(tmp_path: Path) -> Path:
    project = copy_project(FIXTURE_PROJECT, tmp_path / "clean", drop=FAULTY_MODELS)
    seed_external_source(project)
    return project


def warehouse_objects(database: Path) -> dict[tuple[str, str], str]:
    """(schema, name) -> table type, read-only and closed straight away."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables"
        ).fetchall()
    return {(schema, name): kind for schema, name, kind in rows}


def views(database: Path) -> set[tuple[str, str]]:
    """The environment views (what a user of the warehouse sees)."""
    return {name for name, kind in warehouse_objects(database).items() if kind == "VIEW"}


def query(database: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def definitions_for(project: Path) -> dg.Definitions:
    return build_definitions(SQLMeshProject(path=project))


@dataclass
class RunOutcome:
    """A finished run and the instance that recorded it, with the views the tests assert on."""

    instance: dg.DagsterInstance
    run_id: str
    success: bool

    def records(self) -> list:
        return list(self.instance.all_logs(self.run_id))

    def events(self, event_type: str) -> list[dg.DagsterEvent]:
        return [
            r.dagster_event
            for r in self.records()
            if r.dagster_event is not None and r.dagster_event.event_type_value == event_type
        ]

    def messages(self) -> list[str]:
        return [r.user_message for r in self.records() if r.dagster_event is None]

    def step_statuses(self) -> dict[str, str]:
        statuses: dict[str, str] = {}
        for record in self.records():  # Dagster logs skipped downstream steps as plain messages
            if record.dagster_event is None and "Not executing" in record.user_message:
                statuses[record.step_key] = "NOT_EXECUTED"
        for kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            for event in self.events(kind):
                statuses[event.step_key] = kind
        return statuses

    def materializations(self) -> dict[str, dict[str, Any]]:
        """Asset key string -> metadata values of that asset's materialization in the run."""
        found: dict[str, dict[str, Any]] = {}
        for event in self.events("ASSET_MATERIALIZATION"):
            mat = event.event_specific_data.materialization
            found[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
        return found

    def checks(self) -> dict[str, tuple[bool, str]]:
        """'asset:check' -> (passed, severity) for every check result in the run."""
        found: dict[str, tuple[bool, str]] = {}
        for event in self.events("ASSET_CHECK_EVALUATION"):
            data = event.event_specific_data
            name = f"{data.asset_key.to_user_string()}:{data.check_name}"
            found[name] = (data.passed, data.severity.value)
        return found

    def check_metadata(self, check_name: str) -> dict[str, Any]:
        for event in self.events("ASSET_CHECK_EVALUATION"):
            data = event.event_specific_data
            if data.check_name == check_name:
                return {k: v.value for k, v in data.metadata.items()}
        raise KeyError(check_name)

    def failure_message(self, step_key: str) -> str:
        event = next(e for e in self.events("STEP_FAILURE") if e.step_key == step_key)
        return str(event.event_specific_data.error)


def materialize(
    project: Path,
    selection: Iterable[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
    resource_config: dict[str, Any] | None = None,
) -> RunOutcome:
    """One real Dagster run of the project's asset job, in this process."""
    instance = instance or dg.DagsterInstance.ephemeral()
    job = definitions_for(project).resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey.from_user_string(s) for s in selection] if selection else None
    run_config = (
        {"resources": {"sqlmesh": {"config": resource_config}}} if resource_config else None
    )
    result = job.execute_in_process(
        asset_selection=keys,
        instance=instance,
        tags=tags,
        run_config=run_config,
        raise_on_error=False,
    )
    return RunOutcome(instance, result.run_id, result.success)


def evaluated_in(message: str, model: str) -> bool:
    """Whether a progress line of the run's log says SQLMesh evaluated `model`."""
    return message.startswith("SQLMesh evaluated") and f"{model} (" in message


def run_cli(args: list[str], env: dict[str, str], cwd: Path = REPO, timeout: int = 600):
    """Run a command of the project's venv in a subprocess with the given extra environment."""
    full_env = {**os.environ, **env}
    return subprocess.run(
        [str(VENV_BIN / args[0]), *args[1:]],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def environment(project: Path, home: Path, **extra: str) -> dict[str, str]:
    return {"MXM_SQLMESH_PROJECT": str(project), "DAGSTER_HOME": str(home), **extra}


def runs(home: Path) -> list[RunOutcome]:
    """Every run the instance recorded, oldest first."""
    instance = dg.DagsterInstance.from_config(str(home))
    records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    return [RunOutcome(instance, r.dagster_run.run_id, r.dagster_run.is_success) for r in records]


def executions_in_results_file(home: Path, run_id: str) -> int:
    (path,) = (home / "storage" / "mxm_dagster" / "runs").glob(f"{run_id}-*.json")  # one project
    return len(json.loads(path.read_text()))
