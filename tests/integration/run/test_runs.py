"""Real runs as users start them: the CLI, the multiprocess executor, re-execute from failure."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import (
    DUCKDB_CONFIG,
    REPO,
    RunOutcome,
    dagster_home,
    environment,
    evaluated_in,
    executions_in_results_file,
    query,
    run_cli,
    runs,
    views,
)
from tests.support.sqlmesh_state import evaluations, prod_planned_once

SQLMESH_STARTS = "Running SQLMesh for"
CLEAN_MODELS = {
    '"warehouse"."raw"."numbers"',
    '"warehouse"."staging"."doubled"',
    '"warehouse"."staging"."readings"',
    '"warehouse"."marts"."healthy"',
    '"warehouse"."reporting"."kpi-summary"',
}

REEXECUTE_FROM_FAILURE = """
import sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

repo = ReconstructableRepository.for_module("mxm_dagster.definitions", "defs", sys.argv[2])
job = repo.get_reconstructable_job("__ASSET_JOB")
with dg.DagsterInstance.get() as instance:
    options = dg.ReexecutionOptions.from_failure(sys.argv[1], instance)
    with dg.execute_job(job, instance=instance, reexecution_options=options) as result:
        print("REEXECUTION_RUN_ID", result.run_id)
"""


def test_cli_materializes_everything(clean_project: Path, tmp_path: Path) -> None:
    home = dagster_home(tmp_path)
    done = run_cli(
        ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions", "--select", "*"],
        environment(clean_project, home),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    assert set(run.materializations()) == {
        "raw/numbers",
        "staging/doubled",
        "staging/readings",
        "marts/healthy",
        "reporting/kpi_summary",
    }
    # SQLMesh's state: one plan made prod, and it evaluated each model once
    assert prod_planned_once(clean_project / "warehouse.duckdb")
    assert evaluations(clean_project / "warehouse.duckdb") == dict.fromkeys(CLEAN_MODELS, 1)
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 1
    assert executions_in_results_file(home, run.run_id) == 1
    promoted = views(clean_project / "warehouse.duckdb")
    assert ("reporting", "kpi-summary") in promoted and len(promoted) == 5


@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_sqlmesh_runs_once_per_run(executor: str, clean_project: Path, tmp_path: Path) -> None:
    home = dagster_home(tmp_path)
    done = run_cli(
        ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions", "--select", "*"],
        environment(clean_project, home, MXM_DAGSTER_EXECUTOR=executor),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    step_pids = {e.pid for e in run.events("STEP_START")}
    assert len(step_pids) == (1 if executor == "in_process" else 5)
    # SQLMesh's state: one plan made prod, and it evaluated each model once
    assert prod_planned_once(clean_project / "warehouse.duckdb")
    assert evaluations(clean_project / "warehouse.duckdb") == dict.fromkeys(CLEAN_MODELS, 1)
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 1
    assert executions_in_results_file(home, run.run_id) == 1
    outcomes = {m["sqlmesh/outcome"] for m in run.materializations().values()}
    assert outcomes == {"evaluated"}
    assert len({m["sqlmesh/execution_id"] for m in run.materializations().values()}) == 1


def test_multiprocess_subset_records_missing_upstream_once(
    clean_project: Path, tmp_path: Path
) -> None:
    """On a fresh warehouse SQLMesh must build the selection's upstream models too; under the
    multiprocess executor the step process that ran SQLMesh records them, exactly once."""
    home = dagster_home(tmp_path)
    done = run_cli(
        [
            "dagster", "asset", "materialize", "-m", "mxm_dagster.definitions",
            "--select", "marts/healthy",
        ],
        environment(clean_project, home, MXM_DAGSTER_EXECUTOR="multiprocess"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    recorded = [
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in run.events("ASSET_MATERIALIZATION")
    ]
    assert sorted(recorded) == ["marts/healthy", "raw/numbers", "staging/doubled"]
    mats = run.materializations()
    assert mats["raw/numbers"]["sqlmesh/selected"] is False
    assert mats["marts/healthy"]["sqlmesh/selected"] is True
    # SQLMesh's state: one plan, each of the three models evaluated once
    assert prod_planned_once(clean_project / "warehouse.duckdb")
    assert evaluations(clean_project / "warehouse.duckdb") == {
        '"warehouse"."raw"."numbers"': 1,
        '"warehouse"."staging"."doubled"': 1,
        '"warehouse"."marts"."healthy"': 1,
    }
    assert executions_in_results_file(home, run.run_id) == 1


def test_reexecute_from_failure_runs_only_failed_and_skipped(
    faulty_project: Path, tmp_path: Path
) -> None:
    home = dagster_home(tmp_path)
    env = environment(faulty_project, home)
    first = run_cli(
        ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions", "--select", "*"], env
    )
    assert first.returncode != 0
    (failed_run,) = runs(home)
    assert failed_run.step_statuses()["staging__broken"] == "STEP_FAILURE"

    models = faulty_project / "models"
    (models / "broken.sql").write_text(
        (models / "broken.sql").read_text().replace("'abc' || n", "n::VARCHAR")
    )
    (models / "blocked.sql").write_text(
        (models / "blocked.sql").read_text().replace("NULL::INT AS y", "n AS y")
    )
    since = int(time.time() * 1000)
    again = run_cli(
        ["python", "-c", REEXECUTE_FROM_FAILURE, failed_run.run_id, str(REPO)], env, cwd=REPO
    )
    assert again.returncode == 0, again.stderr[-3000:]
    _, rerun = runs(home)
    assert rerun.success
    mats = rerun.materializations()
    assert set(mats) == {
        "staging/broken",
        "marts/after_broken",
        "staging/blocked",
        "marts/after_blocked",
    }
    assert {m["sqlmesh/outcome"] for m in mats.values()} == {"evaluated"}
    # SQLMesh's state: the re-execution evaluated the four models and nothing else
    assert set(evaluations(faulty_project / "warehouse.duckdb", since)) == {
        '"warehouse"."staging"."broken"',
        '"warehouse"."marts"."after_broken"',
        '"warehouse"."staging"."blocked"',
        '"warehouse"."marts"."after_blocked"',
    }
    messages = rerun.messages()
    assert any(f"{SQLMESH_STARTS} 4 selected models" in m for m in messages)
    assert not any(evaluated_in(m, '"warehouse"."raw"."numbers"') for m in messages)
    assert rerun.checks() == {"staging/blocked:not_null": (True, "ERROR")}
    promoted = views(faulty_project / "warehouse.duckdb")
    assert {("marts", "after_broken"), ("marts", "after_blocked")} <= promoted


def _project_reading_an_external_table(folder: Path) -> Path:
    """Two models over `src.events`, an EXTERNAL model (a table another system writes, seeded
    here): the external model becomes a source asset spec, the two models assets with steps."""
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(DUCKDB_CONFIG)
    (folder / "external_models.yaml").write_text("- name: src.events\n  columns:\n    id: int\n")
    (folder / "models" / "events.sql").write_text(
        "MODEL (name staging.events, kind FULL);\nSELECT id FROM src.events"
    )
    (folder / "models" / "counted.sql").write_text(
        "MODEL (name marts.counted, kind FULL);\nSELECT COUNT(*) AS n FROM staging.events"
    )
    with duckdb.connect(str(folder / "warehouse.duckdb")) as connection:
        connection.execute("CREATE SCHEMA src")
        connection.execute("CREATE TABLE src.events AS SELECT range::INT AS id FROM range(3)")
    return folder


def test_a_star_job_runs_the_models_and_leaves_the_external_source_alone(tmp_path: Path) -> None:
    """`define_asset_job(selection="*")` is `AssetSelection.all()`: the models' steps only."""
    project = _project_reading_an_external_table(tmp_path / "external")
    defs = dg.Definitions.merge(
        build_definitions(SQLMeshProject(path=project)),
        dg.Definitions(jobs=[dg.define_asset_job("everything", selection="*")]),
    )
    graph = defs.resolve_asset_graph()
    assert not graph.get(dg.AssetKey(["src", "events"])).is_executable  # a source spec
    job = defs.resolve_job_def("everything")
    assert job.asset_layer.selected_asset_keys == dg.AssetSelection.all().resolve(graph)

    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    run = RunOutcome(instance, result.run_id, result.success)
    assert run.success
    assert run.step_statuses() == {
        "staging__events": "STEP_SUCCESS",
        "marts__counted": "STEP_SUCCESS",
    }
    assert not run.events("STEP_FAILURE")
    assert set(run.materializations()) == {"staging/events", "marts/counted"}
    assert query(project / "warehouse.duckdb", "SELECT n FROM marts.counted") == [(3,)]
