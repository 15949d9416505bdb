"""SQLMesh crons drive automation: a tick runs only the due models, in one SQLMesh execution."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from mxm_dagster.asset_graph.metadata import RANGE_END_TAG, RANGE_START_TAG
from mxm_dagster.asset_graph.partitions import partitions_def_from_model
from mxm_dagster.assets.automation import SENSOR_NAME, due_models, run_requests
from mxm_dagster.assets.loader import asset_keys_by_model
from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import REFERENCE_PROJECT, RunOutcome, copy_project, definitions_for
from tests.support.sqlmesh_state import evaluations, prod_planned_once

KPI = "reporting/kpi_summary"
SQLMESH_STARTS = "Running SQLMesh for"


def far_month() -> int:
    """A month whose first day is never within a day of now."""
    return (datetime.now(tz=UTC).month + 5) % 12 + 1


def with_monthly_kpi(project: Path, month: int) -> Path:
    model = project / "models" / "kpi.sql"
    model.write_text(model.read_text().replace("kind FULL)", f"kind FULL, cron '0 0 1 {month} *')"))
    return project


def test_due_models_follow_each_cron(clean_project: Path) -> None:
    spec = SQLMeshProject(path=with_monthly_kpi(clean_project, 3)).load_spec()
    models = [m for m in spec.models if m.is_model]
    before_midnight = datetime(2024, 3, 4, 23, 59, tzinfo=UTC)
    after_midnight = before_midnight + timedelta(minutes=2)
    daily = {m.name for m in due_models(models, before_midnight, after_midnight)}
    assert daily == {m.name for m in models} - {'"warehouse"."reporting"."kpi-summary"'}
    assert due_models(models, after_midnight, after_midnight + timedelta(hours=1)) == []
    first_of_march = {
        m.name
        for m in due_models(
            models, datetime(2024, 2, 29, 23, 0, tzinfo=UTC), datetime(2024, 3, 1, 0, 1, tzinfo=UTC)
        )
    }
    assert first_of_march == {m.name for m in models}

    keys = asset_keys_by_model(spec)
    (request,) = run_requests(
        due_models(models, before_midnight, after_midnight), keys, after_midnight
    )
    assert dg.AssetKey.from_user_string(KPI) not in request.asset_selection


def test_a_tick_runs_only_due_models_in_one_execution(clean_project: Path) -> None:
    project = with_monthly_kpi(clean_project, far_month())
    defs = definitions_for(project)
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    instance = dg.DagsterInstance.ephemeral()

    first = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(first, dg.SensorResult) and not first.run_requests  # only sets the cursor

    yesterday = (datetime.now(tz=UTC) - timedelta(hours=25)).isoformat()
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, cursor=json.dumps({"evaluated_at": yesterday})
    )
    # Evaluated as the daemon does: the request goes to the implicit asset job, with the checks
    # of the due models, and the sensor adds no job of its own to the code location.
    (request,) = sensor.evaluate_tick(context).run_requests or []
    selected = {key.to_user_string() for key in request.asset_selection or []}
    assert selected == {
        "raw/numbers",
        "staging/doubled",
        "staging/readings",
        "marts/healthy",
    }
    job = defs.resolve_implicit_global_asset_job_def()
    assert request.job_name == job.name
    checks = {
        f"{key.asset_key.to_user_string()}:{key.name}" for key in request.asset_check_keys or []
    }
    assert checks == {
        "raw/numbers:not_null",
        "raw/numbers:unique_values",
        "staging/doubled:accepted_range_non_blocking",
    }
    jobs = sorted(j.name for j in defs.get_repository_def().get_all_jobs())
    assert jobs == sorted([job.name, "sqlmesh_plan_preview"])  # the preview's own (ADR 18)

    result = job.execute_in_process(
        asset_selection=list(request.asset_selection or []),
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
    )
    run = RunOutcome(instance, result.run_id, result.success)
    assert run.success
    assert set(run.materializations()) == selected
    # SQLMesh's state: one plan, each due model evaluated once, the monthly KPI not at all
    database = project / "warehouse.duckdb"
    assert prod_planned_once(database)
    assert evaluations(database) == {
        '"warehouse"."raw"."numbers"': 1,
        '"warehouse"."staging"."doubled"': 1,
        '"warehouse"."staging"."readings"': 1,
        '"warehouse"."marts"."healthy"': 1,
    }
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 1


def tick_request(defs: dg.Definitions) -> dg.RunRequest:
    """The one request of a tick a day after the previous one, evaluated as the daemon does."""
    yesterday = (datetime.now(tz=UTC) - timedelta(hours=25)).isoformat()
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        definitions=defs,
        cursor=json.dumps({"evaluated_at": yesterday}),
    )
    (request,) = defs.resolve_sensor_def(SENSOR_NAME).evaluate_tick(context).run_requests or []
    return request


def test_a_tick_over_partitioned_models_targets_their_latest_partition(tmp_path: Path) -> None:
    """The reference flow with partitions on: daily-partitioned models and unpartitioned marts,
    all `@daily`. A tick is one request for the implicit asset job over every model, its checks
    included, for the latest complete daily partition (SQLMesh fills any older gap in the same
    execution)."""
    project = copy_project(REFERENCE_PROJECT, tmp_path / "justetf")
    defs = build_definitions(SQLMeshProject(path=project), partitions=True)
    job = defs.resolve_implicit_global_asset_job_def()
    quotes = dg.AssetKey(["staging", "stg_daily_quotes"])
    daily = job.asset_layer.get(quotes).partitions_def
    assert isinstance(daily, dg.TimeWindowPartitionsDefinition)
    request = tick_request(defs)
    selected = set(request.asset_selection or [])
    assert request.job_name == job.name
    assert {quotes, dg.AssetKey(["marts", "daily_returns"])} <= selected
    assert dg.AssetKey(["landing", "etf_daily_quotes"]) not in selected  # not a SQLMesh model
    assert {key.asset_key for key in request.asset_check_keys or []} <= selected
    assert request.asset_check_keys
    latest = daily.get_last_partition_key()
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == latest
    # The tick's own time decides the partition, not the clock of whoever evaluates it.
    spec = SQLMeshProject(path=project).load_spec()
    models = [m for m in spec.models if m.is_model]
    tick = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    partitions_defs = {m.name: partitions_def_from_model(m) for m in models}
    (past,) = run_requests(models, asset_keys_by_model(spec), tick, partitions_defs)
    assert past.tags[RANGE_START_TAG] == past.tags[RANGE_END_TAG] == "2024-03-04"


def test_a_tick_over_the_reference_flow_unpartitioned_targets_no_partition(
    tmp_path: Path,
) -> None:
    """Partitions off (the default): the same tick is one request over every model, with no
    partition range, so SQLMesh fills whatever is due as of the tick."""
    project = copy_project(REFERENCE_PROJECT, tmp_path / "justetf")
    defs = build_definitions(SQLMeshProject(path=project), partitions=False)
    request = tick_request(defs)
    assert dg.AssetKey(["staging", "stg_daily_quotes"]) in set(request.asset_selection or [])
    assert RANGE_START_TAG not in request.tags and RANGE_END_TAG not in request.tags
    assert request.partition_key is None
