"""Real Dagster runs of real SQLMesh on real DuckDB: outcomes, checks, failure isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from mxm_dagster.run.events import AUDITS_NOT_RUN_AGAIN
from tests.conftest import (
    RunOutcome,
    evaluated_in,
    grow_numbers,
    materialize,
    query,
    views,
    warehouse_objects,
)
from tests.support.sqlmesh_state import evaluations, prod_planned_once, recorded_intervals

SQLMESH_STARTS = "Running SQLMesh for"


def test_failure_isolation_statuses_checks_and_views(faulty_project: Path) -> None:
    result = materialize(faulty_project)
    assert not result.success
    steps = result.step_statuses()
    assert steps["raw__numbers"] == "STEP_SUCCESS"
    assert steps["staging__doubled"] == "STEP_SUCCESS"
    assert steps["marts__healthy"] == "STEP_SUCCESS"
    assert steps["reporting__kpi_summary"] == "STEP_SUCCESS"
    assert steps["staging__readings"] == "STEP_SUCCESS"
    assert steps["staging__broken"] == "STEP_FAILURE"
    assert steps["staging__blocked"] == "STEP_FAILURE"
    assert steps["marts__after_broken"] == "NOT_EXECUTED"
    assert steps["marts__after_blocked"] == "NOT_EXECUTED"

    mats = result.materializations()
    assert set(mats) == {
        "raw/numbers",
        "staging/doubled",
        "staging/readings",
        "marts/healthy",
        "reporting/kpi_summary",
    }
    assert {m["sqlmesh/outcome"] for m in mats.values()} == {"evaluated"}
    assert len({m["sqlmesh/execution_id"] for m in mats.values()}) == 1
    assert mats["raw/numbers"]["dagster/row_count"] == 10

    checks = result.checks()
    assert checks == {
        "raw/numbers:not_null": (True, "ERROR"),
        "raw/numbers:unique_values": (True, "ERROR"),
        "staging/doubled:accepted_range_non_blocking": (False, "WARN"),
        "staging/blocked:not_null": (False, "ERROR"),
    }

    assert "Could not convert string 'abc1' to INT32" in result.failure_message("staging__broken")
    assert 'staging"' in result.failure_message("staging__broken")

    objects = warehouse_objects(faulty_project / "warehouse.duckdb")
    views = {name for name, kind in objects.items() if kind == "VIEW"}
    assert views == {
        ("raw", "numbers"),
        ("staging", "doubled"),
        ("staging", "readings"),
        ("marts", "healthy"),
        ("reporting", "kpi-summary"),
    }
    assert query(faulty_project / "warehouse.duckdb", "SELECT s FROM marts.healthy") == [(110,)]


def test_check_result_carries_failing_rows_and_query(faulty_project: Path) -> None:
    result = materialize(faulty_project)
    metadata = result.check_metadata("accepted_range_non_blocking")
    assert metadata["failed_rows"] == 8
    assert '"d" > 5' in metadata["audit_query"]


def test_second_run_reports_up_to_date(clean_project: Path) -> None:
    first = materialize(clean_project)
    assert first.success
    second = materialize(clean_project)
    assert second.success
    mats = second.materializations()
    assert {m["sqlmesh/outcome"] for m in mats.values()} == {"up_to_date"}
    # the audits did not run again on the unchanged data (docs/adr/0019), and the records say so
    assert second.checks() == {}
    assert {m.get("sqlmesh/audits") for m in mats.values() if m.get("sqlmesh/audits")} == {
        AUDITS_NOT_RUN_AGAIN
    }
    # with audit_unchanged they do (docs/adr/0012), and say so
    third = materialize(clean_project, resource_config={"audit_unchanged": True})
    assert third.success and third.checks()
    for event in third.events("ASSET_CHECK_EVALUATION"):
        assert event.event_specific_data.metadata["sqlmesh/data_unchanged"].value is True


def test_subset_evaluates_only_the_subset(clean_project: Path) -> None:
    assert materialize(clean_project).success
    database = clean_project / "warehouse.duckdb"
    tables_before = {k for k, v in warehouse_objects(database).items() if v == "BASE TABLE"}
    for name in ("healthy.sql", "kpi.sql"):
        model = clean_project / "models" / name
        model.write_text(
            model.read_text().replace("FROM staging.doubled", ", 7 AS v FROM staging.doubled")
        )
    result = materialize(clean_project, selection=["marts/healthy"])
    assert result.success
    assert set(result.materializations()) == {"marts/healthy"}
    assert result.materializations()["marts/healthy"]["sqlmesh/outcome"] == "evaluated"
    tables_after = {k for k, v in warehouse_objects(database).items() if v == "BASE TABLE"}
    new_tables = tables_after - tables_before
    assert [t[1].split("__")[1] for t in new_tables] == ["healthy"]
    # the unselected edited model keeps its old version in the environment
    assert query(database, 'SELECT * FROM reporting."kpi-summary"') == [(10,)]
    assert query(database, "SELECT v FROM marts.healthy") == [(7,)]


def test_fresh_warehouse_subset_builds_missing_upstream_with_records(clean_project: Path) -> None:
    result = materialize(clean_project, selection=["marts/healthy"])
    assert result.success
    mats = result.materializations()
    assert set(mats) == {"marts/healthy", "staging/doubled", "raw/numbers"}
    assert mats["marts/healthy"]["sqlmesh/selected"] is True
    assert mats["raw/numbers"]["sqlmesh/selected"] is False
    views = {
        k for k, v in warehouse_objects(clean_project / "warehouse.duckdb").items() if v == "VIEW"
    }
    assert views == {("raw", "numbers"), ("staging", "doubled"), ("marts", "healthy")}


def test_restatement_by_run_tag(clean_project: Path) -> None:
    assert materialize(clean_project).success
    result = materialize(clean_project, selection=["raw/numbers"], tags={"mxm/restate": "true"})
    assert result.success
    mats = result.materializations()
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    assert mats["raw/numbers"]["sqlmesh/restated"] is True


def test_restating_on_a_fresh_warehouse_builds_it(clean_project: Path) -> None:
    """SQLMesh refuses to restate in an environment that does not exist; there is nothing to
    recompute yet, so the run builds the models and says why it restated none."""
    result = materialize(clean_project, tags={"mxm/restate": "true"})
    assert result.success, result.messages()
    assert {m["sqlmesh/outcome"] for m in result.materializations().values()} == {"evaluated"}
    assert ("marts", "healthy") in views(clean_project / "warehouse.duckdb")
    assert any(m.startswith("Not restating") for m in result.messages())


def test_model_edit_is_planned_backfilled_and_promoted(clean_project: Path) -> None:
    assert materialize(clean_project).success
    grow_numbers(clean_project)
    result = materialize(clean_project)
    assert result.success
    mats = result.materializations()
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    assert mats["raw/numbers"]["dagster/row_count"] == 20
    assert mats["marts/healthy"]["sqlmesh/outcome"] == "evaluated"  # breaking change downstream
    assert mats["staging/readings"]["sqlmesh/outcome"] == "up_to_date"
    assert query(clean_project / "warehouse.duckdb", "SELECT s FROM marts.healthy") == [(420,)]


def test_progress_and_provenance(clean_project: Path) -> None:
    result = materialize(clean_project)
    # SQLMesh's state: one plan, raw.numbers evaluated once; the progress lines say the same
    assert prod_planned_once(clean_project / "warehouse.duckdb")
    assert evaluations(clean_project / "warehouse.duckdb")['"warehouse"."raw"."numbers"'] == 1
    messages = result.messages()
    assert sum(SQLMESH_STARTS in m for m in messages) == 1
    assert any(evaluated_in(m, '"warehouse"."raw"."numbers"') for m in messages)
    meta = result.materializations()["raw/numbers"]
    for field in (
        "sqlmesh/outcome",
        "sqlmesh/execution_id",
        "sqlmesh/environment",
        "sqlmesh/snapshot_version",
        "sqlmesh/fingerprint",
        "sqlmesh/physical_table",
        "sqlmesh/view",
        "sqlmesh/intervals",
        "sqlmesh/duration_ms",
        "dagster/row_count",
    ):
        assert meta[field] not in (None, ""), field
    assert meta["sqlmesh/environment"] == "prod"
    assert meta["sqlmesh/physical_table"].startswith("warehouse.sqlmesh__raw.raw__numbers__")
    assert len(meta["sqlmesh/intervals"]) == 1


def test_models_wait_for_a_python_asset_of_the_same_run(clean_project: Path) -> None:
    """A SQLMesh step that runs before the Python asset loading an external table must not
    evaluate the models reading that table; they get their own execution once it has landed."""
    from mxm_dagster.assets.loader import build_sqlmesh_assets
    from mxm_dagster.assets.translator import SQLMeshTranslator
    from mxm_dagster.project.sqlmesh_project import SQLMeshProject
    from mxm_dagster.run.resource import SQLMeshResultsResource

    database = clean_project / "warehouse.duckdb"

    @dg.asset(key=["src", "readings"])
    def readings() -> None:
        with duckdb.connect(str(database)) as connection:
            connection.execute(
                "CREATE OR REPLACE TABLE src.readings AS "
                "SELECT range::INT AS reading_id, range * 1.5 AS value FROM range(7)"
            )

    spec = SQLMeshProject(path=clean_project).load_spec()
    sqlmesh_assets = build_sqlmesh_assets(
        spec, clean_project, SQLMeshTranslator(spec), provided_keys=[readings.key]
    )
    defs = dg.Definitions(
        assets=[readings, *sqlmesh_assets],
        resources={"sqlmesh": SQLMeshResultsResource()},
        executor=dg.in_process_executor,
    )
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert result.success
    run = RunOutcome(instance, result.run_id, result.success)
    starts = [e.step_key for e in run.events("STEP_START")]
    assert starts.index("raw__numbers") < starts.index("src__readings")  # the awkward order
    # SQLMesh's truth: staging.readings evaluated once, after the asset landed its 7 rows
    assert evaluations(database)['"warehouse"."staging"."readings"'] == 1
    assert query(database, "SELECT COUNT(*) FROM staging.readings") == [(7,)]
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 2
    assert run.materializations()["staging/readings"]["sqlmesh/outcome"] == "evaluated"


def execution_time_tag(moment: datetime) -> dict[str, str]:
    return {"mxm/execution_time": moment.strftime("%Y-%m-%d %H:%M:%S")}


def test_cron_due_intervals_are_filled(clean_project: Path) -> None:
    """Two days later every daily model has a new interval due: the next run evaluates it, up to
    the day its cron made due as of the execution time (SQLMesh's recorded intervals say so)."""
    from mxm_dagster.child.project import opened_context
    from mxm_dagster.project.sqlmesh_project import SQLMeshProject

    now = datetime.now(UTC)  # read once: both runs and every expectation count from it
    first = materialize(clean_project, tags=execution_time_tag(now))
    assert first.success
    (day_one,) = first.materializations()["raw/numbers"]["sqlmesh/intervals"]
    later = now + timedelta(days=2)
    result = materialize(clean_project, tags=execution_time_tag(later))
    assert result.success
    mats = result.materializations()
    assert mats["raw/numbers"]["sqlmesh/command"] == "run"  # the project is unchanged
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    (day_three,) = mats["raw/numbers"]["sqlmesh/intervals"]
    assert day_three[0] > day_one[0]
    assert mats["staging/readings"]["sqlmesh/outcome"] == "evaluated"
    with opened_context(SQLMeshProject(path=clean_project), load=False) as context:
        recorded = recorded_intervals(context, "prod")['"warehouse"."raw"."numbers"']
    midnight = later.replace(hour=0, minute=0, second=0, microsecond=0)
    assert recorded[-1][1] == int(midnight.timestamp() * 1000)


def test_a_thousand_model_selection_does_not_exhaust_recursion(clean_project: Path) -> None:
    """SQLMesh walks `a | b | ...` recursively: 1500 names exceed Python's default limit."""
    from mxm_dagster.child import sqlmesh_api
    from mxm_dagster.child.project import opened_context
    from mxm_dagster.project.sqlmesh_project import SQLMeshProject

    with opened_context(SQLMeshProject(path=clean_project)) as context:
        sqlmesh_api.apply_plan(context, "prod", ['"warehouse"."raw"."numbers"'] * 1500)
    assert ("raw", "numbers") in views(clean_project / "warehouse.duckdb")


def test_failure_isolation_holds_back_a_change_the_failed_model_reads(clean_project: Path) -> None:
    """healthy broken and doubled (which it reads) edited in one change. A re-plan without
    healthy made SQLMesh 0.236 give healthy a new version (its parent changed), build no table
    for it and fail promoting its view ("Table ... does not exist"): every step failed with
    "SQLMesh stopped before evaluating any model". doubled (and kpi below it) are held back
    instead: prod keeps serving their previous versions, and the re-plan succeeds."""
    database = clean_project / "warehouse.duckdb"
    assert materialize(clean_project).success
    models = clean_project / "models"
    doubled = models / "doubled.sql"
    doubled.write_text(doubled.read_text().replace("n * 2 AS d", "n * 3 AS d"))
    healthy = models / "healthy.sql"
    healthy.write_text(healthy.read_text().replace("sum(d) AS s", "sum(no_such_column) AS s"))

    result = materialize(clean_project)
    assert not result.success
    steps = result.step_statuses()
    assert steps["raw__numbers"] == "STEP_SUCCESS"
    assert steps["staging__doubled"] == "STEP_FAILURE"
    message = result.failure_message("staging__doubled")
    assert "not promoted" in message and 'marts"."healthy' in message, message
    assert "no_such_column" in message  # the failed model's own error, as its step is not run
    assert steps["marts__healthy"] == "NOT_EXECUTED"
    assert steps["reporting__kpi_summary"] == "NOT_EXECUTED"
    # prod serves the previous versions, and SQLMesh finalized the re-plan's environment
    assert query(database, "SELECT max(d) FROM staging.doubled") == [(20,)]
    assert query(database, "SELECT s FROM marts.healthy") == [(110,)]
    with duckdb.connect(str(database), read_only=True) as connection:
        (finalized,) = connection.execute(
            "SELECT finalized_ts IS NOT NULL FROM sqlmesh._environments WHERE name = 'prod'"
        ).fetchone()
    assert finalized
