"""Faults with nothing lost: a run worker killed mid-evaluation, two runs of one project at once
(the scenarios live in tests/support/faults.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dagster as dg
import pytest

from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.support.faults import (
    ASSETS,
    MATERIALIZE_ALL,
    SLOW_MARKER,
    SLOW_RELEASE,
    SLOW_SECONDS,
    all_runs,
    assert_nothing_held,
    assert_recovered,
    assert_serialised,
    data_objects,
    instance_at,
    kill_mid_evaluation,
    lock_is_free,
    materialize_here,
    new_dagster_home,
    outcomes,
    run_environment,
    slow_project,
    start_worker,
    state_tables,
    tail,
    two_runs_at_once,
    wait_until,
    workers,
)
from tests.support.sqlmesh_state import evaluations, prod_planned_once

pytestmark = pytest.mark.timeout(300)


# --------------------------------------------------------------------------- tests


def test_killed_run_worker_loses_nothing(tmp_path: Path) -> None:
    project = slow_project(tmp_path / "killed")
    home = new_dagster_home(tmp_path)
    env = run_environment(project, home)

    killed_run_id = kill_mid_evaluation(project, home, env, tmp_path)
    assert_nothing_held(project, "local", home, killed_run_id)

    log = tmp_path / "next_run.log"
    with workers() as started:
        proc = start_worker(MATERIALIZE_ALL, env, log)
        started.append(proc)
        assert proc.wait(timeout=240) == 0, tail(log)
    with instance_at(home) as instance:
        killed, completing = all_runs(instance)
        assert killed.run_id == killed_run_id and not killed.success
        assert_recovered(completing, killed_run_id, instance)

    reference = slow_project(tmp_path / "reference")
    assert materialize_here(reference, dg.DagsterInstance.ephemeral()).success
    assert data_objects(project / "warehouse.duckdb") == data_objects(
        reference / "warehouse.duckdb"
    )
    assert state_tables(project / "warehouse.duckdb") == state_tables(
        reference / "warehouse.duckdb"
    )
    assert lock_is_free(SQLMeshProject(path=project).lock_path)


def test_two_runs_of_one_project_take_turns(tmp_path: Path) -> None:
    project = slow_project(tmp_path / "project")
    home = new_dagster_home(tmp_path)
    waited, first = two_runs_at_once(run_environment(project, home), home, tmp_path)
    assert_serialised(waited, first)
    # SQLMesh's state: one plan made prod and every model was evaluated once, by one run
    assert prod_planned_once(project / "warehouse.duckdb")
    evaluated = evaluations(project / "warehouse.duckdb")
    assert len(evaluated) == len(ASSETS) and set(evaluated.values()) == {1}

    with instance_at(home) as instance:
        third = materialize_here(project, instance)
    assert third.success
    assert outcomes(third) == dict.fromkeys(ASSETS, "up_to_date")


def test_sqlmesh_finishes_its_plan_when_only_the_run_worker_dies(tmp_path: Path) -> None:
    """The run worker is killed alone (not its process group): the SQLMesh child completes and
    promotes its plan, then releases the project lock (ADR 6); nothing is left half-applied."""
    project = slow_project(tmp_path / "orphaned")
    home = new_dagster_home(tmp_path)
    marker, release = tmp_path / "slow_started", tmp_path / "release"
    env = {
        **run_environment(project, home),
        SLOW_SECONDS: "240",
        SLOW_MARKER: str(marker),
        SLOW_RELEASE: str(release),
    }
    project_lock = SQLMeshProject(path=project).lock_path
    log = tmp_path / "worker.log"
    with workers() as started:
        proc = start_worker(MATERIALIZE_ALL, env, log)
        started.append(proc)
        wait_until(marker.exists, 240, "staging.slow evaluating", [(proc, log)])
        proc.kill()  # the run worker only; SQLMesh's child process is its own process
        proc.wait(timeout=30)
        assert not lock_is_free(project_lock), "SQLMesh stopped with the run worker"
        release.touch()
        wait_until(lambda: lock_is_free(project_lock), 120, "SQLMesh finishing", [])

    reference = slow_project(tmp_path / "reference")
    assert materialize_here(reference, dg.DagsterInstance.ephemeral()).success
    assert data_objects(project / "warehouse.duckdb") == data_objects(
        reference / "warehouse.duckdb"
    )
    with instance_at(home) as instance:
        after = materialize_here(project, instance)
    assert after.success
    assert outcomes(after) == dict.fromkeys(ASSETS, "up_to_date")


def sqlmesh_child_of(parent_pid: int) -> int:
    """The pid of the SQLMesh child process (mxm_dagster.child.execute) of `parent_pid`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent_pid and b"mxm_dagster.child.execute" in cmdline:
            return int(entry.name)
    raise AssertionError(f"no SQLMesh child process under {parent_pid}")


def test_a_killed_sqlmesh_process_fails_the_run_clearly(tmp_path: Path) -> None:
    """SQLMesh's process dies alone (say, the OOM killer): every waiting step fails saying so,
    the run ends, nothing stays locked, and the next run completes the work."""
    project = slow_project(tmp_path / "project")
    home = new_dagster_home(tmp_path)
    marker = tmp_path / "slow_started"
    env = {**run_environment(project, home), SLOW_SECONDS: "240", SLOW_MARKER: str(marker)}
    log = tmp_path / "worker.log"
    with workers() as started:
        proc = start_worker(MATERIALIZE_ALL, env, log)
        started.append(proc)
        wait_until(marker.exists, 240, "staging.slow evaluating", [(proc, log)])
        os.kill(sqlmesh_child_of(proc.pid), signal.SIGKILL)
        assert proc.wait(timeout=120) != 0, tail(log)
    assert lock_is_free(SQLMeshProject(path=project).lock_path)
    with instance_at(home) as instance:
        (killed,) = all_runs(instance)
        assert not killed.success
        failed = {e.step_key for e in killed.events("STEP_FAILURE")}
        assert "staging__slow" in failed
        assert "killed by signal 9" in killed.failure_message("staging__slow")
        after = materialize_here(project, instance)
    assert after.success
    assert outcomes(after)["staging/slow"] == "evaluated"
