"""Terminating a run and bounding an execution: SQLMesh stops, nothing is left behind.

The UI's Terminate button is GraphQL `terminateRun` against a real `dagster dev`: the run worker
is interrupted, the step that waits for SQLMesh sends its child SIGTERM, SQLMesh stops inside the
slow model without promoting anything, and Dagster marks the run CANCELED. A model that hangs is
stopped by the resource's `execution_timeout_seconds`, and the run fails saying so.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from mxm_dagster.child.project import opened_context
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import materialize, views
from tests.e2e.dagster_dev import DagsterDev, save_log
from tests.support.faults import (
    SLOW_MARKER,
    SLOW_RELEASE,
    SLOW_SECONDS,
    STATE_SCHEMA,
    data_objects,
    lock_is_free,
    materialize_here,
    slow_project,
    state_tables,
)
from tests.support.sqlmesh_state import recorded_intervals

pytestmark = pytest.mark.timeout(600)

CHILD_MODULE = b"mxm_dagster.child.execute"
CANCEL_BOUND_SECONDS = 30  # from terminateRun to a CANCELED run, as the issue asks
TERMINATE = (
    "mutation($id: String!) { terminateRun(runId: $id) { __typename"
    " ... on TerminateRunFailure { message } ... on PythonError { message } } }"
)


def sqlmesh_children(marker: Path) -> list[int]:
    """Live SQLMesh child processes started for this test (their environment names `marker`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if CHILD_MODULE in cmdline and str(marker).encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def environments(database: Path) -> set[str]:
    """The SQLMesh environments recorded in the warehouse's state."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(f"SELECT name FROM {STATE_SCHEMA}._environments").fetchall()
    return {name for (name,) in rows}


def promoted(project: Path) -> tuple[dict[str, str], dict[str, list[tuple[int, int]]]]:
    """SQLMesh's own record of prod: model -> snapshot fingerprint, and the intervals filled."""
    with opened_context(SQLMeshProject(path=project), load=False) as context:
        env = context.state_reader.get_environment("prod")
        snapshots = {s.name: s.fingerprint.to_identifier() for s in (env.snapshots if env else [])}
        return snapshots, recorded_intervals(context, "prod")


def poll(condition, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds until `condition()` held; fails the test past `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.3)
    return time.monotonic() - start


@pytest.mark.e2e
def test_terminate_stops_sqlmesh_and_the_next_run_is_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = slow_project(tmp_path / "project")
    warehouse = project / "warehouse.duckdb"
    marker, release = tmp_path / "slow_started", tmp_path / "release"
    # dagster dev passes its environment on to run workers and the SQLMesh child
    monkeypatch.setenv(SLOW_SECONDS, "600")
    monkeypatch.setenv(SLOW_MARKER, str(marker))
    monkeypatch.setenv(SLOW_RELEASE, str(release))
    dev = DagsterDev(project, tmp_path / "dev")
    try:
        dev.start()
        dev.wait_until_loaded()
        nodes = [n for n in dev.asset_nodes().values() if n.materializable]
        run_id = dev.launch_assets(nodes)
        poll(marker.exists, 240, "staging.slow evaluating")
        assert sqlmesh_children(marker), "no SQLMesh child while staging.slow evaluates"
        time.sleep(5)  # the steps of the models before it have reported: they wait for theirs

        answer = dev.graphql(TERMINATE, {"id": run_id})["terminateRun"]
        assert answer["__typename"] == "TerminateRunSuccess", answer
        took = poll(
            lambda: dev.run(run_id)["status"] == "CANCELED",
            CANCEL_BOUND_SECONDS,
            f"run CANCELED (now {dev.run(run_id)['status']})",
        )
        assert took <= CANCEL_BOUND_SECONDS
        # the run worker ends right after the status: the child has to be gone before it
        poll(lambda: not sqlmesh_children(marker), 5, "SQLMesh child gone")
        assert lock_is_free(SQLMeshProject(path=project).lock_path)
        # the run's own lock (one per run and project, beside its results file) was taken and
        # is free again
        (run_lock,) = (dev.home / "storage" / "mxm_dagster" / "runs").glob(f"{run_id}-*.lock")
        assert lock_is_free(run_lock)
        # not promoted, not half-promoted: no environment, no view a user would query
        assert environments(warehouse) == set()
        assert views(warehouse) == set()
        messages = [e.get("message", "") for e in dev.run_events(run_id)]
        assert any("Stopping SQLMesh: the run was terminated" in m for m in messages), messages
        assert any("it stopped at a safe point" in m for m in messages), messages

        release.touch()  # the next run's staging.slow does not wait
        second = dev.launch_assets(nodes)
        assert dev.wait_for_run(second, 240) == "SUCCESS", dev.run_errors(second)
    except BaseException:
        save_log(dev, "terminate")
        raise
    finally:
        dev.stop()

    reference = slow_project(tmp_path / "reference")
    assert materialize_here(reference, dg.DagsterInstance.ephemeral()).success
    reference_warehouse = reference / "warehouse.duckdb"
    assert data_objects(warehouse) == data_objects(reference_warehouse)
    assert state_tables(warehouse) == state_tables(reference_warehouse)
    assert environments(warehouse) == environments(reference_warehouse) == {"prod"}
    assert promoted(project) == promoted(reference)


# The hanging model deaf to SIGTERM (it takes the signal over): only SIGKILL can end it.
DEAF = "    import signal\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"


@pytest.mark.parametrize(
    ("deaf", "how"),
    [(False, "it stopped at a safe point"), (True, "exit code -9")],
    ids=["stops-at-sigterm", "killed-after-grace"],
)
def test_a_hanging_model_is_stopped_by_the_execution_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deaf: bool, how: str
) -> None:
    project = slow_project(tmp_path / "project")
    if deaf:
        model = project / "models" / "slow.py"
        text = model.read_text()
        model.write_text(text.replace("    marker = os.environ", DEAF + "    marker = os.environ"))
    marker = tmp_path / "slow_started"
    monkeypatch.setenv(SLOW_SECONDS, "100000")  # hangs: only the bound ends it
    monkeypatch.setenv(SLOW_MARKER, str(marker))
    bound = 40
    started = time.monotonic()
    run = materialize(project, resource_config={"execution_timeout_seconds": bound})
    took = time.monotonic() - started
    assert marker.exists(), "staging.slow never started"
    assert not run.success
    assert took < bound + 90, f"the run took {took:.0f} s"
    message = run.failure_message("staging__slow")
    assert f"SQLMesh did not finish within execution_timeout_seconds={bound}" in message, message
    assert how in message, message
    unreported = message.split("did not report:")[1]
    assert "slow" in unreported and "after_slow" in unreported, message
    assert not sqlmesh_children(marker)
    assert lock_is_free(SQLMeshProject(path=project).lock_path)
    assert views(project / "warehouse.duckdb") == set()
