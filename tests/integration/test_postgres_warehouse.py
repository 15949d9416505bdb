"""The warehouse on PostgreSQL too: the `postgres` gateway, on the real server at 127.0.0.1:5432.

Each test makes its own databases (Dagster's instance, the warehouse, SQLMesh's state, and for the
raw SQLMesh twin a second warehouse and state) and drops them afterwards. Runs use the production
profile (deploy/dagster.yaml as shipped), so what a test reads from the event log is what the
Postgres event log holds. The reference flow and the failure-isolation fixture are compared with
raw `sqlmesh plan --auto-apply` on a twin copy against the same engine; two runs that share only
the servers (their own DAGSTER_HOME and project folder each, "two machines") must take turns.
"""

from __future__ import annotations

import math
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2
import pytest

from mxm_dagster.child.state_lock import lock_key, state_lock
from mxm_dagster.common.errors import WarehouseBusyError
from mxm_dagster.justetf.landing import (
    LANDING_SCHEMA,
    LANDING_TABLE,
    SNAPSHOT_FILE,
    land_into_postgres,
)
from tests.conftest import (
    FAULTY_MODELS,
    FIXTURE_PROJECT,
    REFERENCE_PROJECT,
    REPO,
    RunOutcome,
    copy_project,
    run_cli,
)
from tests.integration.test_postgres import PostgresServer, postgres_server  # noqa: F401 (fixture)
from tests.support.faults import (
    AFTER_SLOW,
    ASSETS,
    MATERIALIZE_ALL,
    SLOW_MARKER,
    SLOW_MODEL,
    SLOW_RELEASE,
    SLOW_SECONDS,
    SQLMESH_STARTS,
    all_runs,
    assert_serialised,
    instance_at,
    new_dagster_home,
    outcomes,
    runs_saying,
    start_worker,
    tail,
    wait_until,
    workers,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(480)]

PROFILE = REPO / "deploy" / "dagster.yaml"
GATEWAY = "postgres"
STATE_LOCK_WAIT = "Waiting for the SQLMesh state lock"
STATE_LOCK_TAKEN = "Took the SQLMesh state lock"
STATE_LOCK_RELEASED = "Released the SQLMesh state lock"
#: advisory locks in this database (pg_locks shows the whole server's)
ADVISORY_HERE = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)
#: schemas that are not the project's views: SQLMesh's physical layer and state, other systems'
_NOT_VIEWS = ("information_schema", "pg_catalog", "landing", "src")


@dataclass
class Servers:
    """One test's databases on the server; the environment already points every variable here."""

    server: PostgresServer
    names: dict[str, str]  # role (dagster, warehouse, state, twin_warehouse, twin_state) -> db

    def query(self, role: str, sql: str, *params: object) -> list[tuple]:
        return self.server.query(self.names[role], sql, *params)

    def twin_env(self) -> dict[str, str]:
        """Raw SQLMesh's twin: the same gateway, pointed at the twin's own databases."""
        return {
            "MXM_SQLMESH_WAREHOUSE_DB": self.names["twin_warehouse"],
            "MXM_SQLMESH_STATE_DB": self.names["twin_state"],
        }

    def connect_arguments(self, role: str) -> dict[str, str | int]:
        s = self.server
        return {
            "host": s.host,
            "port": s.port,
            "user": s.user,
            "password": s.password,
            "dbname": self.names[role],
        }


@pytest.fixture
def servers(
    postgres_server: PostgresServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Servers]:
    prefix = f"mxm_test_{secrets.token_hex(4)}"
    roles = ("dagster", "warehouse", "state", "twin_warehouse", "twin_state")
    found = Servers(postgres_server, {role: f"{prefix}_{role}" for role in roles})
    connection = postgres_server.connect()
    try:
        with connection.cursor() as cursor:
            for name in found.names.values():
                cursor.execute(f'CREATE DATABASE "{name}"')
        for variable in ("DAGSTER_PG", "MXM_SQLMESH_STATE", "MXM_SQLMESH_WAREHOUSE"):
            monkeypatch.setenv(f"{variable}_HOST", postgres_server.host)
            monkeypatch.setenv(f"{variable}_PORT", str(postgres_server.port))
            monkeypatch.setenv(f"{variable}_USER", postgres_server.user)
            monkeypatch.setenv(f"{variable}_PASSWORD", postgres_server.password)
        monkeypatch.setenv("DAGSTER_PG_DB", found.names["dagster"])
        monkeypatch.setenv("MXM_SQLMESH_WAREHOUSE_DB", found.names["warehouse"])
        monkeypatch.setenv("MXM_SQLMESH_STATE_DB", found.names["state"])
        monkeypatch.delenv("MXM_SQLMESH_STATE_SCHEMA", raising=False)
        yield found
    finally:
        with connection.cursor() as cursor:
            for name in found.names.values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


# --------------------------------------------------------------------------- helpers


def seed_readings(servers: Servers, role: str) -> None:
    """The fixture's external table in a Postgres warehouse, as another system would write it."""
    connection = psycopg2.connect(**servers.connect_arguments(role))
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE SCHEMA src")
            cursor.execute(
                "CREATE TABLE src.readings AS SELECT g::INT AS reading_id, "
                "g * 1.5::DOUBLE PRECISION AS value FROM generate_series(0, 4) AS g"
            )
    finally:
        connection.close()


def _comparable(value: object) -> object:
    return round(value, 9) if isinstance(value, float) and math.isfinite(value) else value


def view_contents(servers: Servers, role: str) -> dict[tuple[str, str], list[tuple]]:
    """(schema, view) -> its rows, sorted, of every view the environment serves."""
    found = servers.query(
        role,
        "SELECT table_schema, table_name FROM information_schema.views "
        "WHERE table_schema NOT LIKE 'sqlmesh%%' AND table_schema <> ALL(%s)",
        list(_NOT_VIEWS),
    )
    contents = {}
    for schema, name in found:
        rows = servers.query(role, f'SELECT * FROM "{schema}"."{name}"')
        contents[(schema, name)] = sorted(
            (tuple(_comparable(v) for v in row) for row in rows), key=repr
        )
    return contents


def raw_twin(source: Path, dest: Path, servers: Servers, drop: tuple[str, ...] = ()) -> None:
    """`sqlmesh plan --auto-apply` on a copy, into the twin's databases."""
    twin = copy_project(source, dest, drop=drop)
    done = run_cli(
        ["sqlmesh", "--gateway", GATEWAY, "plan", "--auto-apply", "--no-prompts"],
        servers.twin_env(),
        cwd=twin,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def run_to_end(project: Path, home: Path, log: Path, expect_success: bool = True) -> None:
    """`dagster asset materialize --select '*'` on the `postgres` gateway, to its end."""
    env = {"MXM_SQLMESH_PROJECT": str(project), "DAGSTER_HOME": str(home)}
    env["MXM_SQLMESH_GATEWAY"] = GATEWAY
    with workers() as started:
        proc = start_worker(list(MATERIALIZE_ALL), env, log)
        started.append(proc)
        assert (proc.wait(timeout=300) == 0) is expect_success, tail(log)


def assert_row_counts_match(run: RunOutcome, contents: dict[tuple[str, str], list[tuple]]):
    """The row count each materialization reports is the row count of the view it names."""
    for key, metadata in run.materializations().items():
        if key.startswith(f"{LANDING_SCHEMA}/"):
            continue
        schema, name = key.split("/")
        view = next(v for v in contents if (v[0], v[1].replace("-", "_")) == (schema, name))
        assert metadata["dagster/row_count"] == len(contents[view]), key


# --------------------------------------------------------------------------- tests


def test_reference_flow_on_postgres_warehouse(servers: Servers, tmp_path: Path) -> None:
    """Landing asset and all 13 models into Postgres; views equal raw SQLMesh's on Postgres."""
    project = copy_project(REFERENCE_PROJECT, tmp_path / "justetf")
    home = new_dagster_home(tmp_path, PROFILE)
    run_to_end(project, home, tmp_path / "run.log")
    with instance_at(home) as instance:
        (run,) = all_runs(instance)
        assert run.success
        materialized = run.materializations()
        checks = run.checks()

    assert len(materialized) == 14
    assert {m.get("sqlmesh/outcome") for k, m in materialized.items() if "landing" not in k} == {
        "evaluated"
    }
    landed = servers.query("warehouse", f"SELECT count(*) FROM {LANDING_SCHEMA}.{LANDING_TABLE}")
    assert materialized[f"{LANDING_SCHEMA}/{LANDING_TABLE}"]["dagster/row_count"] == landed[0][0]
    assert landed[0][0] > 10_000
    assert not list(project.glob("*.duckdb"))  # nothing went into a DuckDB file

    # the twin: the same landing, then SQLMesh's own CLI
    land_into_postgres(
        servers.connect_arguments("twin_warehouse"), REFERENCE_PROJECT / SNAPSHOT_FILE
    )
    raw_twin(REFERENCE_PROJECT, tmp_path / "twin", servers)
    ours, theirs = view_contents(servers, "warehouse"), view_contents(servers, "twin_warehouse")
    assert len(ours) == 13
    assert ours == theirs
    assert_row_counts_match(run, ours)

    # every audit came back as a check result, and the shipped data passes them
    assert checks and all(passed for passed, _ in checks.values()), checks
    assert "marts/trailing_performance:unique_values" in checks
    environments = servers.query("state", 'SELECT name FROM "sqlmesh_justetf"._environments')
    assert environments == [("prod",)]


def test_failure_isolation_on_postgres_warehouse(servers: Servers, tmp_path: Path) -> None:
    """A failing model on Postgres fails its step only; the rest equals a clean raw twin."""
    project = copy_project(FIXTURE_PROJECT, tmp_path / "faulty")
    seed_readings(servers, "warehouse")
    home = new_dagster_home(tmp_path, PROFILE)
    run_to_end(project, home, tmp_path / "run.log", expect_success=False)
    with instance_at(home) as instance:
        (run,) = all_runs(instance)
        steps = run.step_statuses()
        materialized = run.materializations()
        checks = run.checks()
        broken = run.failure_message("staging__broken")

    for ok in ("raw__numbers", "staging__doubled", "marts__healthy", "reporting__kpi_summary"):
        assert steps[ok] == "STEP_SUCCESS", ok
    assert steps["staging__readings"] == "STEP_SUCCESS"
    assert steps["staging__broken"] == steps["staging__blocked"] == "STEP_FAILURE"
    assert steps["marts__after_broken"] == steps["marts__after_blocked"] == "NOT_EXECUTED"
    assert set(materialized) == {
        "raw/numbers",
        "staging/doubled",
        "staging/readings",
        "marts/healthy",
        "reporting/kpi_summary",
    }
    assert 'invalid input syntax for type integer: "abc1"' in broken  # Postgres's own words
    assert checks == {
        "raw/numbers:not_null": (True, "ERROR"),
        "raw/numbers:unique_values": (True, "ERROR"),
        "staging/doubled:accepted_range_non_blocking": (False, "WARN"),
        "staging/blocked:not_null": (False, "ERROR"),
    }

    seed_readings(servers, "twin_warehouse")
    raw_twin(FIXTURE_PROJECT, tmp_path / "twin", servers, drop=FAULTY_MODELS)
    ours, theirs = view_contents(servers, "warehouse"), view_contents(servers, "twin_warehouse")
    assert set(ours) == {
        ("raw", "numbers"),
        ("staging", "doubled"),
        ("staging", "readings"),
        ("marts", "healthy"),
        ("reporting", "kpi-summary"),
    }
    assert ours == theirs
    assert ours[("marts", "healthy")] == [(110,)]
    assert_row_counts_match(run, ours)


def _slow_copy(dest: Path) -> Path:
    project = copy_project(FIXTURE_PROJECT, dest, drop=FAULTY_MODELS)
    (project / "models" / "slow.py").write_text(SLOW_MODEL)
    (project / "models" / "after_slow.sql").write_text(AFTER_SLOW)
    return project


def _lock_time(run: RunOutcome, text: str) -> datetime:
    """When the child took or released the state lock, by the time it wrote into the line
    (the run's log stores child lines in batches, so the event's own time is later)."""
    (line,) = [m for m in run.messages() if text in m]
    match = re.search(r" at (\S+)", line.split(")", 1)[-1])
    assert match, line
    return datetime.fromisoformat(match.group(1))


def test_runs_on_two_machines_take_turns(servers: Servers, tmp_path: Path) -> None:
    """Two run processes with their own DAGSTER_HOME and project folder (no shared file lock),
    started together: the state lock makes the second wait until the first's SQLMesh is done."""
    seed_readings(servers, "warehouse")
    release, marker = tmp_path / "release", tmp_path / "slow_started"
    machines = []
    for name in ("machine_a", "machine_b"):
        root = tmp_path / name
        root.mkdir()
        project = _slow_copy(root / "project")
        home = new_dagster_home(root, PROFILE)
        env = {
            "MXM_SQLMESH_PROJECT": str(project),
            "DAGSTER_HOME": str(home),
            "MXM_SQLMESH_GATEWAY": GATEWAY,
            SLOW_SECONDS: "150",
            SLOW_MARKER: str(marker),
            SLOW_RELEASE: str(release),
        }
        machines.append((env, root / "run.log"))

    with workers() as started, instance_at(Path(machines[0][0]["DAGSTER_HOME"])) as instance:
        for env, log in machines:
            started.append(start_worker(list(MATERIALIZE_ALL), env, log))
        watched = list(zip(started, [log for _, log in machines], strict=True))
        wait_until(
            lambda: len(runs_saying(instance, SQLMESH_STARTS)) == 2 and marker.exists(),
            240,
            "both runs at SQLMesh, one inside staging.slow",
            watched,
        )
        time.sleep(5)  # the other run's child reaches the state lock (a second or two)
        release.touch()
        for proc, log in watched:
            try:
                assert proc.wait(timeout=180) == 0, tail(log)
            except subprocess.TimeoutExpired:
                pytest.fail(f"run did not finish after release:\n{tail(log)}")
        runs = all_runs(instance)
        assert len(runs) == 2 and all(run.success for run in runs)
        (waited,) = [run for run in runs if any(STATE_LOCK_WAIT in m for m in run.messages())]
        (first,) = [run for run in runs if run is not waited]
        # serialised, not merely both green: the waiting run's SQLMesh started after the other's
        # ended, and found everything already done
        assert _lock_time(waited, STATE_LOCK_TAKEN) >= _lock_time(first, STATE_LOCK_RELEASED)
        assert _lock_time(first, STATE_LOCK_TAKEN) < _lock_time(first, STATE_LOCK_RELEASED)
        assert_serialised(waited, first)
        assert set(outcomes(first)) == ASSETS
        # the file locks did not do it: each machine has its own, and nobody waited for one
        assert not any("Waiting for the SQLMesh project lock" in m for m in waited.messages())

    assert servers.query("warehouse", 'SELECT s FROM "marts"."healthy"') == [(110,)]
    assert servers.query("warehouse", 'SELECT sum(tripled) FROM "staging"."slow"') == [(165,)]


def test_state_lock_wait_is_bounded_and_names_the_lock(servers: Servers) -> None:
    """Held elsewhere (here: by this test's own session), the lock is waited for at most the
    bound, with one announcement; freed, it is taken at once."""
    arguments = {**servers.connect_arguments("state"), "connect_timeout": 5}
    holder = psycopg2.connect(**arguments)
    holder.autocommit = True
    said: list[str] = []
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key("sqlmesh", "prod"),))
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError, match="Gave up after 2 s waiting for the SQLMesh"):
            with state_lock(arguments, "sqlmesh", "prod", 2, said.append):
                pytest.fail("took a lock another session holds")
        assert 2 <= time.monotonic() - started < 10
        assert [m for m in said if m.startswith(STATE_LOCK_WAIT)] == said
        assert len(said) == 1
        # another environment of the same state is another lock
        with state_lock(arguments, "sqlmesh", "dev", 2, said.append):
            pass
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (lock_key("sqlmesh", "prod"),))
        with state_lock(arguments, "sqlmesh", "prod", 2, said.append):
            held = servers.query("state", ADVISORY_HERE + " AND granted")
            assert held == [(1,)]
    finally:
        holder.close()
    assert servers.query("state", ADVISORY_HERE) == [(0,)]
