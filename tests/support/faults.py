"""Fault scenarios shared by tests/integration/run/test_faults.py (DuckDB state) and
tests/integration/test_postgres.py (Dagster and SQLMesh state in PostgreSQL).

Every run here is a real process (`dagster asset materialize`, or `execute_job` in a second
interpreter) against one DAGSTER_HOME. A Python model in the project copy, `staging.slow`, lets a
test hold SQLMesh in the middle of its evaluation: it writes a marker file when it starts, then
waits for a number of seconds or until a release file appears (environment variables below). The
model's code does not change between runs, so its fingerprint does not either.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import (
    FAULTY_MODELS,
    FIXTURE_PROJECT,
    REPO,
    VENV_BIN,
    RunOutcome,
    copy_project,
    seed_external_source,
    warehouse_objects,
)

SLOW_SECONDS = "MXM_TEST_SLOW_SECONDS"  # how long staging.slow may take at most
SLOW_MARKER = "MXM_TEST_SLOW_MARKER"  # file staging.slow writes when its evaluation starts
SLOW_RELEASE = "MXM_TEST_SLOW_RELEASE"  # file whose appearance ends the wait early

SQLMESH_STARTS = "Running SQLMesh for"
LOCK_WAIT = "Waiting for the SQLMesh project lock"
DUCKDB_LOCK_ERROR = "Could not set lock"
STATE_SCHEMA = "sqlmesh"  # where SQLMesh keeps its state in a DuckDB warehouse

MATERIALIZE_ALL = "dagster asset materialize -m mxm_dagster.definitions --select *".split()

# A second way to start a run: `execute_job` in its own interpreter, as a run worker does.
EXECUTE_JOB = """
import sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

repo = ReconstructableRepository.for_module("mxm_dagster.definitions", "defs", sys.argv[1])
with dg.DagsterInstance.get() as instance:
    with dg.execute_job(repo.get_reconstructable_job("__ASSET_JOB"), instance=instance) as result:
        print("RUN", result.run_id, result.success)
        sys.exit(0 if result.success else 1)
"""

SLOW_MODEL = '''"""Slow on demand: fault tests hold SQLMesh inside this model's evaluation."""

import os
import time
import typing as t
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlmesh import ExecutionContext, model


@model(
    "staging.slow",
    kind="FULL",
    columns={"n": "int", "tripled": "int"},
    depends_on=["raw.numbers"],
)
def execute(
    context: ExecutionContext,
    start: datetime,
    end: datetime,
    execution_time: datetime,
    **kwargs: t.Any,
) -> pd.DataFrame:
    marker = os.environ.get("MXM_TEST_SLOW_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    release = os.environ.get("MXM_TEST_SLOW_RELEASE")
    deadline = time.monotonic() + float(os.environ.get("MXM_TEST_SLOW_SECONDS") or 0)
    while time.monotonic() < deadline and not (release and Path(release).exists()):
        time.sleep(0.1)
    table = context.resolve_table("raw.numbers")
    return context.fetchdf(f"SELECT n, n * 3 AS tripled FROM {table}")
'''

AFTER_SLOW = (
    "MODEL (name marts.after_slow, kind FULL);\nSELECT sum(tripled) AS s FROM staging.slow\n"
)

ASSETS = {
    "raw/numbers",
    "staging/doubled",
    "staging/readings",
    "staging/slow",
    "marts/after_slow",
    "marts/healthy",
    "reporting/kpi_summary",
}


# --------------------------------------------------------------------------- projects


def slow_project(dest: Path) -> Path:
    """The healthy fixture project plus a model the test can hold up and one downstream of it."""
    project = copy_project(FIXTURE_PROJECT, dest, drop=FAULTY_MODELS)
    seed_external_source(project)
    (project / "models" / "slow.py").write_text(SLOW_MODEL)
    (project / "models" / "after_slow.sql").write_text(AFTER_SLOW)
    return project


def new_dagster_home(parent: Path, profile: Path | None = None) -> Path:
    """A DAGSTER_HOME: the given dagster.yaml, or the default SQLite instance without telemetry."""
    home = parent / "dagster_home"
    home.mkdir()
    if profile is not None:
        (home / "dagster.yaml").write_text(profile.read_text())
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def run_environment(project: Path, home: Path, gateway: str | None = None) -> dict[str, str]:
    env = {"MXM_SQLMESH_PROJECT": str(project), "DAGSTER_HOME": str(home)}
    if gateway:
        env["MXM_SQLMESH_GATEWAY"] = gateway
    return env


# --------------------------------------------------------------------------- processes


def start_worker(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A run in its own process group (so a kill reaches any step process), output to a file.

    A file, not a pipe: nobody reads a pipe while the test polls, and a full pipe blocks the run.
    """
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(VENV_BIN / args[0]), *args[1:]],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's whole process group and reap it (no-op when already gone)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@contextmanager
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started in the block are killed on the way out, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            kill_worker(proc)


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no output)"


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    watched: Sequence[tuple[subprocess.Popen[bytes], Path]] = (),
) -> None:
    """Poll `condition`; fail with the workers' output if it times out or a worker exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        for proc, log in watched:
            if proc.poll() is not None:
                pytest.fail(f"{what}: worker exited with {proc.returncode} first:\n{tail(log)}")
        if time.monotonic() > deadline:
            logs = "\n".join(tail(log, 2000) for _, log in watched)
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{logs}")
        time.sleep(0.3)


# --------------------------------------------------------------------------- Dagster records


@contextmanager
def instance_at(home: Path) -> Iterator[dg.DagsterInstance]:
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def all_runs(instance: dg.DagsterInstance) -> list[RunOutcome]:
    """Every run the instance recorded, oldest first."""
    records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    return [RunOutcome(instance, r.dagster_run.run_id, r.dagster_run.is_success) for r in records]


def run_status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None, run_id
    return run.status


def runs_saying(instance: dg.DagsterInstance, text: str) -> list[str]:
    """Ids of the runs whose event log has a message containing `text` (so far)."""
    found = []
    for record in instance.get_run_records():
        run_id = record.dagster_run.run_id
        if any(text in r.user_message for r in instance.all_logs(run_id)):
            found.append(run_id)
    return found


def outcomes(run: RunOutcome) -> dict[str, str]:
    """Asset key -> SQLMesh outcome (evaluated, up_to_date) of the run's materializations."""
    return {key: str(meta["sqlmesh/outcome"]) for key, meta in run.materializations().items()}


def materialize_here(
    project: Path, instance: dg.DagsterInstance, gateway: str | None = None
) -> RunOutcome:
    """A run in this process, with the gateway named explicitly (no environment variable)."""
    job = build_definitions(
        SQLMeshProject(path=project, gateway=gateway)
    ).resolve_implicit_global_asset_job_def()
    run_config: dict[str, Any] = (
        {"resources": {"sqlmesh": {"config": {"gateway": gateway}}}} if gateway else {}
    )
    result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    return RunOutcome(instance, result.run_id, result.success)


# --------------------------------------------------------------------------- warehouse


def lock_is_free(path: Path) -> bool:
    """True when this process can take the flock at once (nobody holds it)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def data_objects(database: Path) -> dict[tuple[str, str], tuple[str, int]]:
    """(schema, name) -> (table type, row count) of everything but SQLMesh's state tables."""
    objects = {k: v for k, v in warehouse_objects(database).items() if k[0] != STATE_SCHEMA}
    with duckdb.connect(str(database), read_only=True) as connection:
        counted = {}
        for (schema, name), kind in objects.items():
            row = connection.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()
            counted[(schema, name)] = (kind, int(row[0]) if row else 0)
    return counted


def state_tables(database: Path) -> set[str]:
    return {name for (schema, name) in warehouse_objects(database) if schema == STATE_SCHEMA}


# --------------------------------------------------------------------------- the two faults


def kill_mid_evaluation(project: Path, home: Path, env: dict[str, str], scratch: Path) -> str:
    """Start a run, SIGKILL its process group while SQLMesh evaluates `staging.slow`; its run id."""
    marker = scratch / "slow_started"
    log = scratch / "killed_run.log"
    slow_env = {**env, SLOW_SECONDS: "240", SLOW_MARKER: str(marker)}
    with workers() as started, instance_at(home) as instance:
        proc = start_worker(MATERIALIZE_ALL, slow_env, log)
        started.append(proc)
        watched = [(proc, log)]
        wait_until(
            lambda: bool(runs_saying(instance, SQLMESH_STARTS)), 240, "SQLMesh start", watched
        )
        wait_until(marker.exists, 120, "staging.slow evaluating", watched)
        (run_id,) = runs_saying(instance, SQLMESH_STARTS)
        assert run_status(instance, run_id) is dg.DagsterRunStatus.STARTED
        kill_worker(proc)
        assert proc.returncode == -signal.SIGKILL
        # Nothing monitors a CLI run: the killed run stays STARTED (run monitoring in the
        # production profile marks it failed); it must not pass for a success either way.
        assert run_status(instance, run_id) is not dg.DagsterRunStatus.SUCCESS
    return run_id


def assert_nothing_held(project: Path, gateway: str, home: Path, run_id: str) -> None:
    """No lock outlives a killed run: project lock, the run's own lock, the DuckDB file."""
    project_lock = SQLMeshProject(path=project, gateway=gateway).lock_path
    assert project_lock.is_file(), "the killed run never took the project lock"
    assert lock_is_free(project_lock)
    for run_lock in (home / "storage" / "mxm_dagster" / "runs").glob(f"{run_id}-*.lock"):
        assert lock_is_free(run_lock)
    duckdb.connect(str(project / "warehouse.duckdb")).close()  # writable straight away


def assert_recovered(completing: RunOutcome, killed_run_id: str, instance: dg.DagsterInstance):
    """The next run did everything and is what every asset's latest materialization points at.

    The killed run may have recorded materializations for models whose evaluation finished before
    the kill (steps report early); the completing run supersedes them with promoted views.
    """
    assert completing.success
    done = outcomes(completing)
    assert set(done) == ASSETS
    assert done["staging/slow"] == done["marts/after_slow"] == "evaluated"
    assert set(done.values()) <= {"evaluated", "up_to_date"}
    for key in ASSETS:
        latest = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
        assert latest is not None and latest.run_id == completing.run_id, key
    assert completing.run_id != killed_run_id


def two_runs_at_once(
    env: dict[str, str], home: Path, scratch: Path
) -> tuple[RunOutcome, RunOutcome]:
    """Launch the CLI and an `execute_job` run together; return (the one that waited, the other).

    The run that gets the project lock first is held inside `staging.slow` until both runs have
    announced their SQLMesh execution and a moment has passed, so the other one must find the
    lock taken. Both get the same environment: whichever wins, the other has to wait.
    """
    release = scratch / "release"
    marker = scratch / "slow_started"
    slow_env = {**env, SLOW_SECONDS: "150", SLOW_MARKER: str(marker), SLOW_RELEASE: str(release)}
    cli_log, job_log = scratch / "cli_run.log", scratch / "execute_job_run.log"
    with workers() as started, instance_at(home) as instance:
        cli = start_worker(MATERIALIZE_ALL, slow_env, cli_log)
        job = start_worker(["python", "-c", EXECUTE_JOB, str(REPO)], slow_env, job_log)
        started += [cli, job]
        watched = [(cli, cli_log), (job, job_log)]
        wait_until(
            lambda: len(runs_saying(instance, SQLMESH_STARTS)) == 2 and marker.exists(),
            240,
            "both runs at SQLMesh, one inside staging.slow",
            watched,
        )
        time.sleep(3)  # the second run's SQLMesh thread reaches the project lock (milliseconds)
        release.touch()
        for proc, log in watched:
            try:
                proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                pytest.fail(f"run did not finish after release:\n{tail(log)}")
        for proc, log in watched:
            assert proc.returncode == 0, tail(log)
        for _, log in watched:
            assert DUCKDB_LOCK_ERROR not in log.read_text(errors="replace")
        runs = all_runs(instance)
    assert len(runs) == 2 and all(run.success for run in runs)
    waited = [run for run in runs if any(LOCK_WAIT in m for m in run.messages())]
    assert len(waited) == 1, "exactly one run should have waited for the other"
    (other,) = [run for run in runs if run is not waited[0]]
    return waited[0], other


def assert_serialised(waited: RunOutcome, first: RunOutcome) -> None:
    """Serialised, not merely both green: each model evaluated once, by the run that went first."""
    for run in (waited, first):
        assert set(outcomes(run)) == ASSETS
        assert not any(DUCKDB_LOCK_ERROR in m for m in run.messages())
        assert not run.events("STEP_FAILURE")
    assert set(outcomes(first).values()) == {"evaluated"}
    # had the two SQLMesh executions overlapped, the second would have found models missing too
    assert set(outcomes(waited).values()) == {"up_to_date"}
