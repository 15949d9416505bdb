"""The production profile on the real PostgreSQL server: deploy/dagster.yaml + SQLMesh state in PG.

Each test gets two fresh databases, one for the Dagster instance (runs, event log, schedules) and
one for SQLMesh's state, and a DAGSTER_HOME holding deploy/dagster.yaml exactly as shipped: every
connection value comes from the DAGSTER_PG_* and MXM_SQLMESH_STATE_* variables. The warehouse
stays a DuckDB file in the project copy (gateway `postgres_state`).

Without a server the tests skip, unless CI (CI=true) or MXM_REQUIRE_POSTGRES=1 asks for them: then
they fail, so a CI job cannot go green by silently testing nothing.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.utils import make_new_run_id
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from tests.conftest import REFERENCE_PROJECT, REPO, copy_project, views, warehouse_objects
from tests.support.faults import (
    ASSETS,
    MATERIALIZE_ALL,
    all_runs,
    assert_nothing_held,
    assert_recovered,
    assert_serialised,
    instance_at,
    kill_mid_evaluation,
    materialize_here,
    new_dagster_home,
    outcomes,
    run_environment,
    slow_project,
    start_worker,
    tail,
    two_runs_at_once,
    workers,
)
from tests.support.required import setup_missing

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

PROFILE = REPO / "deploy" / "dagster.yaml"
GATEWAY = "postgres_state"
PROJECT_TAG = "mxm/sqlmesh_project"
LOCATION_TAG = "dagster/code_location"  # Dagster sets it on every run it queues
LOCATION = "mxm_dagster"  # workspace.yaml
SQLMESH_STATE_TABLES = {"_snapshots", "_environments", "_intervals", "_versions"}
REFERENCE_MODELS = 13  # sqlmesh_project/models; the landing asset comes on top


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def connect(self, dbname: str = "postgres") -> psycopg2.extensions.connection:
        connection = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            connect_timeout=5,
        )
        connection.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
        return connection

    def query(self, dbname: str, sql: str, *params: object) -> list[tuple]:
        connection = self.connect(dbname)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return cursor.fetchall()
        finally:
            connection.close()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The server on MXM_TEST_PG_HOST:MXM_TEST_PG_PORT (127.0.0.1:5432), as a user who may create
    databases; skip without one, or fail when CI or MXM_REQUIRE_POSTGRES=1 requires it."""
    host = os.environ.get("MXM_TEST_PG_HOST", "127.0.0.1")
    port = int(os.environ.get("MXM_TEST_PG_PORT", "5432"))
    password = os.environ.get("MXM_TEST_PG_PASSWORD", "")
    users = [os.environ["MXM_TEST_PG_USER"]] if os.environ.get("MXM_TEST_PG_USER") else []
    problems: list[str] = []
    for user in users or ["postgres", "root"]:
        server = PostgresServer(host, port, user, password)
        try:
            (allowed,) = server.query(
                "postgres",
                "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user",
            )[0]
        except psycopg2.Error as exc:
            problems.append(f"{user}: {' '.join(str(exc).split())}")
            continue
        if allowed:
            return server
        problems.append(f"{user}: may not create databases")
    setup_missing(
        f"No usable PostgreSQL server at {host}:{port} ({'; '.join(problems)})",
        "MXM_REQUIRE_POSTGRES",
    )


@dataclass
class ProductionProfile:
    """One test's databases and DAGSTER_HOME; the environment is already set for both."""

    server: PostgresServer
    dagster_db: str
    state_db: str
    home: Path

    def dagster(self, sql: str, *params: object) -> list[tuple]:
        return self.server.query(self.dagster_db, sql, *params)

    def state(self, sql: str, *params: object) -> list[tuple]:
        return self.server.query(self.state_db, sql, *params)

    def tables(self, dbname: str, schema: str) -> set[str]:
        rows = self.server.query(
            dbname,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            schema,
        )
        return {name for (name,) in rows}


@pytest.fixture
def production(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ProductionProfile]:
    """Fresh databases for the Dagster instance and for SQLMesh state, dropped afterwards."""
    prefix = f"mxm_test_{secrets.token_hex(4)}"
    profile = ProductionProfile(
        postgres_server, f"{prefix}_dagster", f"{prefix}_state", new_dagster_home(tmp_path, PROFILE)
    )
    server = postgres_server
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            for name in (profile.dagster_db, profile.state_db):
                cursor.execute(f'CREATE DATABASE "{name}"')
        # in os.environ, so runs in this process and the subprocesses (which inherit it) agree
        for prefix_ in ("DAGSTER_PG", "MXM_SQLMESH_STATE"):
            monkeypatch.setenv(f"{prefix_}_HOST", server.host)
            monkeypatch.setenv(f"{prefix_}_PORT", str(server.port))
            monkeypatch.setenv(f"{prefix_}_USER", server.user)
            monkeypatch.setenv(f"{prefix_}_PASSWORD", server.password)
        monkeypatch.setenv("DAGSTER_PG_DB", profile.dagster_db)
        monkeypatch.setenv("MXM_SQLMESH_STATE_DB", profile.state_db)
        monkeypatch.delenv("MXM_SQLMESH_STATE_SCHEMA", raising=False)
        yield profile
    finally:
        with connection.cursor() as cursor:
            for name in (profile.dagster_db, profile.state_db):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


def run_cli_to_end(env: dict[str, str], log: Path) -> None:
    """`--select '*'` (time partitions are off by default, ADR 5), to its end."""
    with workers() as started:
        proc = start_worker(list(MATERIALIZE_ALL), env, log)
        started.append(proc)
        assert proc.wait(timeout=240) == 0, tail(log)


def assert_state_in_postgres(profile: ProductionProfile, schema: str, warehouse: Path) -> None:
    """SQLMesh state in its Postgres database only: not in the warehouse, not in Dagster's DB."""
    assert SQLMESH_STATE_TABLES <= profile.tables(profile.state_db, schema)
    environments = profile.state(f'SELECT name FROM "{schema}"._environments')
    assert environments == [("prod",)]
    in_warehouse = {name for (_, name) in warehouse_objects(warehouse)}
    assert not SQLMESH_STATE_TABLES & in_warehouse
    assert not profile.tables(profile.dagster_db, schema)
    assert "runs" not in profile.tables(profile.state_db, "public")


def materialized_in_event_log(profile: ProductionProfile, run_id: str) -> set[str]:
    """Asset keys with a materialization of the run, read straight from the Postgres event log."""
    rows = profile.dagster(
        "SELECT DISTINCT asset_key FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id,
    )
    return {dg.AssetKey.from_db_string(key).to_user_string() for (key,) in rows}


def successful_runs(profile: ProductionProfile) -> list[str]:
    return [r for (r,) in profile.dagster("SELECT run_id FROM runs WHERE status = 'SUCCESS'")]


# --------------------------------------------------------------------------- tests


def test_profile_is_postgres_with_queued_runs(production: ProductionProfile) -> None:
    """deploy/dagster.yaml as shipped: Postgres storages, queued runs, one run per project."""
    with instance_at(production.home) as instance:
        for storage in (
            instance.run_storage,
            instance.event_log_storage,
            instance.schedule_storage,
        ):
            assert type(storage).__module__.startswith("dagster_postgres"), type(storage)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, dg.QueuedRunCoordinator)
        queue = coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs >= 1
        limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
        assert limits[LOCATION_TAG] == {"key": LOCATION_TAG, "value": LOCATION, "limit": 1}
        assert limits[PROJECT_TAG]["limit"] == 1
        assert limits[PROJECT_TAG]["value"] == {"applyLimitPerUniqueValue": True}
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 0
        assert not instance.telemetry_enabled
    assert {"runs", "event_logs", "jobs"} <= production.tables(production.dagster_db, "public")


def _queue_run(
    instance: dg.DagsterInstance,
    status: dg.DagsterRunStatus,
    location: str,
    project: str | None = None,
) -> str:
    """A run as the webserver or a schedule creates it: with its code location tag and origin."""
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(location), "__repository__"),
        "__ASSET_JOB",
    )
    tags = {LOCATION_TAG: location, **({PROJECT_TAG: project} if project else {})}
    run = dg.DagsterRun(
        job_name="__ASSET_JOB",
        run_id=make_new_run_id(),
        status=status,
        tags=tags,
        remote_job_origin=origin,
    )
    instance.add_run(run)
    return run.run_id


def test_queue_runs_one_run_per_project_at_a_time(production: ProductionProfile) -> None:
    """Across nodes nothing but the queue serialises runs: ask the daemon's own dequeue logic
    which queued runs it would launch under the shipped limits (no daemon process, no launch)."""
    queued, started = dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with instance_at(production.home) as instance:

        def dequeued() -> list[str]:
            runs = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
            return [run.run_id for run in runs]

        running = _queue_run(instance, started, LOCATION)
        next_up = _queue_run(instance, queued, LOCATION)
        after_that = _queue_run(instance, queued, LOCATION)
        elsewhere = _queue_run(instance, queued, "another_location")
        assert dequeued() == [elsewhere]  # the project's runs wait for the running one
        instance.report_run_failed(instance.get_run_by_id(running))
        assert dequeued() == [next_up, elsewhere]  # then one of them, oldest first
        assert after_that not in dequeued()

        # runs tagged with their project wait for each other across code locations
        instance.delete_run(next_up)
        instance.delete_run(after_that)
        instance.delete_run(elsewhere)
        _queue_run(instance, started, "location_a", project="justetf:postgres_state")
        same = _queue_run(instance, queued, "location_b", project="justetf:postgres_state")
        other = _queue_run(instance, queued, "location_b", project="other:postgres_state")
        assert dequeued() == [other]
        assert same not in dequeued()


def test_reference_flow_on_production_profile(
    production: ProductionProfile, tmp_path: Path
) -> None:
    """The justETF flow, landing asset included, with Dagster and SQLMesh state in Postgres."""
    project = copy_project(REFERENCE_PROJECT, tmp_path / "justetf")
    run_cli_to_end(run_environment(project, production.home, GATEWAY), tmp_path / "run.log")

    (run_id,) = successful_runs(production)
    materialized = materialized_in_event_log(production, run_id)
    assert len(materialized) == REFERENCE_MODELS + 1
    assert {
        "landing/etf_daily_quotes",
        "marts/ter_comparison",
        "marts/risk_metrics",
    } <= materialized
    warehouse = project / "justetf_pgstate.duckdb"
    assert_state_in_postgres(production, "sqlmesh_justetf", warehouse)
    assert ("marts", "fund_overview") in views(warehouse)
    assert not (project / "justetf.duckdb").exists()  # the local gateway's file is untouched


def test_concurrent_runs_on_production_profile(
    production: ProductionProfile, tmp_path: Path
) -> None:
    """Two runs at once take turns; runs, materializations and SQLMesh state land in Postgres."""
    project = slow_project(tmp_path / "project")
    env = run_environment(project, production.home, GATEWAY)
    waited, first = two_runs_at_once(env, production.home, tmp_path)
    assert_serialised(waited, first)

    # both runs and all their materializations are in Postgres, nothing in SQLite files
    assert sorted(successful_runs(production)) == sorted([waited.run_id, first.run_id])
    for run in (waited, first):
        assert materialized_in_event_log(production, run.run_id) == ASSETS
    assert not (production.home / "history").exists()
    assert len(views(project / "warehouse.duckdb")) == len(ASSETS)

    with instance_at(production.home) as instance:
        third = materialize_here(project, instance, GATEWAY)
        assert third.success
        assert outcomes(third) == dict.fromkeys(ASSETS, "up_to_date")
    assert_state_in_postgres(production, "sqlmesh", project / "warehouse.duckdb")


def test_sqlmesh_state_survives_killed_run(production: ProductionProfile, tmp_path: Path) -> None:
    """SIGKILL mid-evaluation: the next run completes and a further one finds everything done."""
    project = slow_project(tmp_path / "killed")
    env = run_environment(project, production.home, GATEWAY)
    killed_run_id = kill_mid_evaluation(project, production.home, env, tmp_path)
    assert_nothing_held(project, GATEWAY, production.home, killed_run_id)

    with instance_at(production.home) as instance:
        # the next run in this process (the CLI path is covered by test_faults.py)
        completing = materialize_here(project, instance, GATEWAY)
        killed, _ = all_runs(instance)
        assert killed.run_id == killed_run_id and not killed.success
        assert_recovered(completing, killed_run_id, instance)
        again = materialize_here(project, instance, GATEWAY)
        assert again.success
        assert outcomes(again) == dict.fromkeys(ASSETS, "up_to_date")
    assert_state_in_postgres(production, "sqlmesh", project / "warehouse.duckdb")
    assert len(views(project / "warehouse.duckdb")) == len(ASSETS)


def test_unreachable_state_server_fails_the_run_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state database down: the run fails, naming the connection, and writes nothing.

    Needs no server, only a port where none listens."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MXM_SQLMESH_STATE_HOST", "127.0.0.1")
    monkeypatch.setenv("MXM_SQLMESH_STATE_PORT", str(port))
    project = slow_project(tmp_path / "project")
    before = warehouse_objects(project / "warehouse.duckdb")

    run = materialize_here(project, dg.DagsterInstance.ephemeral(), GATEWAY)

    assert not run.success
    assert not run.materializations()
    assert set(run.step_statuses().values()) <= {"STEP_FAILURE", "NOT_EXECUTED"}
    message = run.failure_message("raw__numbers")
    assert f'"127.0.0.1", port {port} failed' in message
    assert warehouse_objects(project / "warehouse.duckdb") == before
