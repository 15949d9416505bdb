"""Retries re-run SQLMesh: a step retried by a Dagster RetryPolicy, and a run re-executed from
failure (what run retries, `dagster/max_retries`, launch), each run SQLMesh again for what did not
succeed, and only that.

The project is the healthy fixture plus `staging.flaky`, a Python model that fails on its first
evaluation only: it raises when its marker file (in the folder named by MXM_TEST_FLAKY_DIR) is
absent, creating it; `marts.after_flaky` reads it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from mxm_dagster import sqlmesh_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import (
    FAULTY_MODELS,
    FIXTURE_PROJECT,
    RunOutcome,
    copy_project,
    dagster_home,
    query,
    seed_external_source,
    views,
)
from tests.support.sqlmesh_state import evaluations

pytestmark = pytest.mark.timeout(300)

FLAKY_DIR = "MXM_TEST_FLAKY_DIR"
PROJECT_VAR = "MXM_TEST_RETRY_PROJECT"  # the project `retry_job` builds, for execute_job
EXECUTOR_VAR = "MXM_TEST_RETRY_EXECUTOR"
POLICY_VAR = "MXM_TEST_RETRY_POLICY"
FLAKY = '"warehouse"."staging"."flaky"'
AFTER_FLAKY = '"warehouse"."marts"."after_flaky"'
FLAKY_TOO = '"warehouse"."staging"."flaky_too"'
AFTER_BOTH = '"warehouse"."marts"."after_both"'
HEALTHY = (
    '"warehouse"."raw"."numbers"',
    '"warehouse"."staging"."doubled"',
    '"warehouse"."staging"."readings"',
    '"warehouse"."marts"."healthy"',
    '"warehouse"."reporting"."kpi-summary"',
)
FLAKY_STEP = "staging__flaky"
AFTER_FLAKY_STEP = "marts__after_flaky"

FLAKY_MODEL = '''"""Fails on its first evaluation only, remembered by a marker file."""

import os
import typing as t
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlmesh import ExecutionContext, model


@model(
    "staging.NAME",
    kind="FULL",
    columns={"n": "int", "squared": "int"},
    depends_on=["raw.numbers"],
)
def execute(
    context: ExecutionContext,
    start: datetime,
    end: datetime,
    execution_time: datetime,
    **kwargs: t.Any,
) -> pd.DataFrame:
    marker = Path(os.environ["MXM_TEST_FLAKY_DIR"]) / "NAME_failed_once"
    if not marker.exists():
        marker.write_text("the first evaluation failed")
        raise RuntimeError("NAME: first attempt fails")
    table = context.resolve_table("raw.numbers")
    return context.fetchdf(f"SELECT n, n * n AS squared FROM {table}")
'''

AFTER_FLAKY_MODEL = (
    "MODEL (name marts.after_flaky, kind FULL);\nSELECT sum(squared) AS s FROM staging.flaky\n"
)
AFTER_BOTH_MODEL = (
    "MODEL (name marts.after_both, kind FULL);\nSELECT a.n FROM staging.flaky AS a "
    "JOIN staging.flaky_too AS b ON a.n = b.n\n"
)


def flaky_project(dest: Path, two: bool = False) -> Path:
    """The healthy fixture with staging.flaky and marts.after_flaky; `two`: also
    staging.flaky_too, failing on its first evaluation as well, and marts.after_both reading
    both."""
    project = copy_project(FIXTURE_PROJECT, dest, drop=FAULTY_MODELS)
    seed_external_source(project)
    (project / "models" / "flaky.py").write_text(FLAKY_MODEL.replace("NAME", "flaky"))
    (project / "models" / "after_flaky.sql").write_text(AFTER_FLAKY_MODEL)
    if two:
        (project / "models" / "flaky_too.py").write_text(FLAKY_MODEL.replace("NAME", "flaky_too"))
        (project / "models" / "after_both.sql").write_text(AFTER_BOTH_MODEL)
    return project


def definitions(project: Path, retry_policy: dg.RetryPolicy | None) -> dg.Definitions:
    defs = sqlmesh_definitions(SQLMeshProject(path=project), retry_policy=retry_policy)
    return dg.Definitions.merge(defs, dg.Definitions(executor=dg.in_process_executor))


def retry_job() -> dg.JobDefinition:
    """The asset job of the project in MXM_TEST_RETRY_PROJECT, for `execute_job` (which needs a
    reconstructable job); MXM_TEST_RETRY_EXECUTOR=multiprocess runs each step in its own process,
    MXM_TEST_RETRY_POLICY=1 retries each model's step once."""
    executor = (
        dg.multiprocess_executor
        if os.environ.get(EXECUTOR_VAR) == "multiprocess"
        else dg.in_process_executor
    )
    policy = dg.RetryPolicy(max_retries=1) if os.environ.get(POLICY_VAR) == "1" else None
    job = dg.define_asset_job(
        "all_models", selection=dg.AssetSelection.all(), executor_def=executor
    )
    project = SQLMeshProject(path=Path(os.environ[PROJECT_VAR]))
    defs = sqlmesh_definitions(project, retry_policy=policy)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("all_models")


def executions(home: Path, run_id: str) -> list[dict]:
    """The run's SQLMesh executions as the results file has them (outcomes by model), in order."""
    (path,) = (home / "storage" / "mxm_dagster" / "runs").glob(f"{run_id}-*.json")  # one project
    return sorted(json.loads(path.read_text()), key=lambda e: e["started_at"])


def statuses(execution: dict) -> dict[str, str]:
    return {name: outcome["status"] for name, outcome in execution["models"].items()}


def selected(execution: dict) -> set[str]:
    return {name for name, outcome in execution["models"].items() if outcome["selected"]}


def evaluated(execution: dict) -> set[str]:
    return {name for name, status in statuses(execution).items() if status == "evaluated"}


def evaluated_once(project: Path, *models: str) -> bool:
    """SQLMesh's state: each of `models` evaluated exactly once (a failed evaluation records no
    interval; its marker file says it ran), nothing else evaluated."""
    return evaluations(project / "warehouse.duckdb") == dict.fromkeys(models, 1)


def step_events(run: RunOutcome, step: str) -> list[str]:
    return [
        r.dagster_event.event_type_value
        for r in run.records()
        if r.dagster_event is not None
        and r.step_key == step
        and r.dagster_event.event_type_value.startswith("STEP_")
        and r.dagster_event.event_type_value != "STEP_OUTPUT"
    ]


@pytest.fixture
def marker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    marker_dir = tmp_path / "flaky_marker"
    marker_dir.mkdir()
    monkeypatch.setenv(FLAKY_DIR, str(marker_dir))  # the SQLMesh child inherits it
    return marker_dir


@pytest.fixture
def flaky(tmp_path: Path, marker_dir: Path) -> Path:
    return flaky_project(tmp_path / "flaky")


def materialize(
    project: Path,
    home: Path,
    retry_policy: dg.RetryPolicy | None,
    op_retry_policy: dg.RetryPolicy | None = None,
) -> RunOutcome:
    """One in-process run of every model: `retry_policy` through `sqlmesh_definitions`,
    `op_retry_policy` as a job's."""
    instance = dg.DagsterInstance.from_config(str(home))
    job = dg.define_asset_job(
        "all_models", selection=dg.AssetSelection.all(), op_retry_policy=op_retry_policy
    )
    defs = dg.Definitions.merge(
        definitions(project, retry_policy), dg.Definitions(jobs=[job])
    ).resolve_job_def("all_models")
    result = defs.execute_in_process(instance=instance, raise_on_error=False)
    return RunOutcome(instance, result.run_id, result.success)


def test_a_retried_step_runs_sqlmesh_again_for_its_model_and_downstream(
    flaky: Path, tmp_path: Path, marker_dir: Path
) -> None:
    home = dagster_home(tmp_path)
    run = materialize(flaky, home, dg.RetryPolicy(max_retries=1))

    assert run.success
    assert step_events(run, FLAKY_STEP) == [
        "STEP_START",
        "STEP_UP_FOR_RETRY",
        "STEP_RESTARTED",
        "STEP_SUCCESS",
    ]
    assert step_events(run, AFTER_FLAKY_STEP) == ["STEP_START", "STEP_SUCCESS"]
    # SQLMesh's truth: flaky's first evaluation failed (its marker), then each model was
    # evaluated once: the retry re-ran nothing that had succeeded
    assert (marker_dir / "flaky_failed_once").exists()
    assert evaluated_once(flaky, *HEALTHY, FLAKY, AFTER_FLAKY)
    first, second = executions(home, run.run_id)  # SQLMesh ran twice, no more
    assert sum("Running SQLMesh for" in m for m in run.messages()) == 2
    assert statuses(first)[FLAKY] == "failed" and statuses(first)[AFTER_FLAKY] == "skipped"
    assert '"warehouse"."raw"."numbers"' in evaluated(first)
    # The retry ran the failed model and what it blocked, nothing that already succeeded
    assert selected(second) == {FLAKY, AFTER_FLAKY}
    assert evaluated(second) == {FLAKY, AFTER_FLAKY}
    materializations = run.materializations()
    assert materializations["staging/flaky"]["sqlmesh/execution_id"] == second["execution_id"]
    assert materializations["marts/after_flaky"]["sqlmesh/execution_id"] == second["execution_id"]
    assert materializations["raw/numbers"]["sqlmesh/execution_id"] == first["execution_id"]
    warehouse = flaky / "warehouse.duckdb"
    assert {("staging", "flaky"), ("marts", "after_flaky")} <= views(warehouse)
    assert query(warehouse, "SELECT s FROM marts.after_flaky") == [(385,)]  # 1² + ... + 10²


def test_a_retried_step_in_its_own_process_runs_sqlmesh_again(
    flaky: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The multiprocess executor: the retry is a new step process, which reads the run's
    results file, finds its outcome spent, and starts the retry execution; the downstream step
    (another process) reads that execution's outcome."""
    monkeypatch.setenv(PROJECT_VAR, str(flaky))
    monkeypatch.setenv(EXECUTOR_VAR, "multiprocess")
    monkeypatch.setenv(POLICY_VAR, "1")
    home = dagster_home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        with dg.execute_job(dg.reconstructable(retry_job), instance=instance) as result:
            run = RunOutcome(instance, result.run_id, result.success)
        assert run.success
        assert step_events(run, FLAKY_STEP).count("STEP_UP_FOR_RETRY") == 1
        assert step_events(run, AFTER_FLAKY_STEP)[-1] == "STEP_SUCCESS"
        assert evaluated_once(flaky, *HEALTHY, FLAKY, AFTER_FLAKY)
        first, second = executions(home, run.run_id)
        assert statuses(first)[FLAKY] == "failed"
        assert selected(second) == evaluated(second) == {FLAKY, AFTER_FLAKY}
        materializations = run.materializations()
        assert (
            materializations["marts/after_flaky"]["sqlmesh/execution_id"] == second["execution_id"]
        )
    assert query(flaky / "warehouse.duckdb", "SELECT s FROM marts.after_flaky") == [(385,)]


def test_steps_retrying_together_share_one_new_execution(tmp_path: Path, marker_dir: Path) -> None:
    """Both flaky models fail in the first execution; the first retry runs SQLMesh for both and
    what they blocked, and the second retrying step takes its outcome from that execution. The
    policy is the job's `op_retry_policy` this time."""
    project = flaky_project(tmp_path / "two", two=True)
    home = dagster_home(tmp_path)
    run = materialize(project, home, None, op_retry_policy=dg.RetryPolicy(max_retries=1))

    assert run.success
    for step in (FLAKY_STEP, "staging__flaky_too"):
        assert step_events(run, step).count("STEP_UP_FOR_RETRY") == 1
        assert step_events(run, step)[-1] == "STEP_SUCCESS"
    assert evaluated_once(project, *HEALTHY, FLAKY, FLAKY_TOO, AFTER_FLAKY, AFTER_BOTH)
    first, second = executions(home, run.run_id)
    assert statuses(first)[FLAKY] == statuses(first)[FLAKY_TOO] == "failed"
    assert selected(second) == evaluated(second) == {FLAKY, FLAKY_TOO, AFTER_FLAKY, AFTER_BOTH}
    materializations = run.materializations()
    assert {
        materializations[key]["sqlmesh/execution_id"]
        for key in ("staging/flaky", "staging/flaky_too", "marts/after_flaky", "marts/after_both")
    } == {second["execution_id"]}
    assert query(project / "warehouse.duckdb", "SELECT count(*) FROM marts.after_both") == [(10,)]


def test_without_a_retry_policy_the_failure_stands(flaky: Path, tmp_path: Path) -> None:
    home = dagster_home(tmp_path)
    run = materialize(flaky, home, None)

    assert not run.success
    assert step_events(run, FLAKY_STEP) == ["STEP_START", "STEP_FAILURE"]
    assert "flaky: first attempt fails" in run.failure_message(FLAKY_STEP)
    assert run.step_statuses()[AFTER_FLAKY_STEP] == "NOT_EXECUTED"
    assert len(executions(home, run.run_id)) == 1
    assert ("marts", "after_flaky") not in views(flaky / "warehouse.duckdb")


def test_reexecution_from_failure_runs_sqlmesh_for_the_failed_model_and_downstream_only(
    flaky: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a run retry launches (`dagster/max_retries`, retry strategy FROM_FAILURE, the
    default): a new run of the failed steps and those they kept from running."""
    monkeypatch.setenv(PROJECT_VAR, str(flaky))
    home = dagster_home(tmp_path)
    job = dg.reconstructable(retry_job)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        with dg.execute_job(job, instance=instance) as result:
            failed = RunOutcome(instance, result.run_id, result.success)
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        since = int(time.time() * 1000)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as result:
            again = RunOutcome(instance, result.run_id, result.success)

        assert not failed.success and again.success
        assert set(instance.get_run_by_id(again.run_id).step_keys_to_execute or ()) == {
            FLAKY_STEP,
            AFTER_FLAKY_STEP,
        }
        # SQLMesh's state: the re-execution evaluated the failed model and the one below it
        assert evaluations(flaky / "warehouse.duckdb", since) == {FLAKY: 1, AFTER_FLAKY: 1}
        (first,) = executions(home, failed.run_id)
        assert statuses(first)[FLAKY] == "failed"
        (second,) = executions(home, again.run_id)
        assert selected(second) == {FLAKY, AFTER_FLAKY}
        assert evaluated(second) == {FLAKY, AFTER_FLAKY}
        assert set(again.materializations()) == {"staging/flaky", "marts/after_flaky"}
    assert query(flaky / "warehouse.duckdb", "SELECT s FROM marts.after_flaky") == [(385,)]


def test_a_model_failing_on_every_attempt_fails_its_step_with_the_last_error(
    faulty_project: Path, tmp_path: Path
) -> None:
    """The failure-isolation fixture: staging.broken (a SQL error) and staging.blocked (a blocking
    audit) fail on every attempt; both retry in one new execution, then fail for good."""
    home = dagster_home(tmp_path)
    run = materialize(faulty_project, home, dg.RetryPolicy(max_retries=1))

    assert not run.success
    first, second = executions(home, run.run_id)
    broken, blocked = '"warehouse"."staging"."broken"', '"warehouse"."staging"."blocked"'
    assert selected(second) == {
        broken,
        blocked,
        '"warehouse"."marts"."after_broken"',
        '"warehouse"."marts"."after_blocked"',
    }
    assert statuses(first)[broken] == statuses(first)[blocked] == "failed"
    assert statuses(second)[broken] == statuses(second)[blocked] == "failed"
    for step in ("staging__broken", "staging__blocked"):
        assert step_events(run, step) == [
            "STEP_START",
            "STEP_UP_FOR_RETRY",
            "STEP_RESTARTED",
            "STEP_FAILURE",
        ]
    failure = next(e for e in run.events("STEP_FAILURE") if e.step_key == "staging__broken")
    data = failure.event_specific_data
    assert data.user_failure_data.metadata["sqlmesh/execution_id"].value == second["execution_id"]
    assert "Could not convert string" in str(data.error.cause)
    statuses_of_steps = run.step_statuses()
    assert statuses_of_steps["marts__after_broken"] == "NOT_EXECUTED"
    assert statuses_of_steps["staging__doubled"] == "STEP_SUCCESS"
