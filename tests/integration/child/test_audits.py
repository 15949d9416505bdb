"""Audits report exactly what SQLMesh ran, and our console hooks never break SQLMesh.

Real SQLMesh on real DuckDB through real Dagster runs, on `tests/fixtures/audits_project`: a
standalone audit on one model and one over two models, a `skip` audit, one audit used twice with
other bounds on a model of four daily batches, and blocking audits that pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.project import opened_context
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import REPO, copy_project, definitions_for, materialize, query, views
from tests.support.sqlmesh_state import recorded_intervals, remove_latest_interval

AUDITS_PROJECT = REPO / "tests" / "fixtures" / "audits_project"
MODELS = {("shop", "orders"), ("shop", "customers"), ("shop", "daily_amounts")}
ALL_VIEWS = MODELS | {("shop", "order_totals")}


@pytest.fixture
def audits_project(tmp_path: Path) -> Path:
    return copy_project(AUDITS_PROJECT, tmp_path / "audits")


def _edit(project: Path, model: str, old: str, new: str) -> None:
    path = project / "models" / model
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def _environment_nodes(project: Path) -> set[str]:
    """What SQLMesh's prod environment holds: models and standalone audits."""
    with opened_context(SQLMeshProject(path=project), load=False) as context:
        return sqlmesh_api.environment_model_names(context, "prod")


def _intervals(project: Path) -> dict[str, list[tuple[int, int]]]:
    with opened_context(SQLMeshProject(path=project), load=False) as context:
        return recorded_intervals(context, "prod")


def test_standalone_audits_build_on_a_fresh_warehouse_and_report_on_the_model_they_query(
    audits_project: Path,
) -> None:
    result = materialize(audits_project)

    assert result.success, result.messages()
    assert views(audits_project / "warehouse.duckdb") == ALL_VIEWS
    assert {"assert_orders_positive", "assert_totals_match_orders"} <= _environment_nodes(
        audits_project
    )
    checks = result.checks()
    assert checks["shop/orders:assert_orders_positive"] == (True, "WARN")
    # over two models: on the most downstream one
    assert checks["shop/order_totals:assert_totals_match_orders"] == (True, "WARN")
    assert not any("Reporting hook" in m for m in result.messages())


def test_a_standalone_audit_over_several_models_depends_on_the_others(
    audits_project: Path,
) -> None:
    defs = definitions_for(audits_project)
    job = defs.resolve_implicit_global_asset_job_def()
    specs = {
        spec.key.name: spec
        for assets in job.asset_layer.asset_graph.assets_defs
        for spec in assets.check_specs
    }
    totals = specs["assert_totals_match_orders"]
    assert totals.asset_key.path == ["shop", "order_totals"]
    assert {dep.asset_key.path[-1] for dep in totals.additional_deps} == {"orders"}
    assert not totals.blocking
    assert specs["assert_orders_positive"].asset_key.path == ["shop", "orders"]
    skipped = specs["every_row_flagged"]
    assert not skipped.blocking and "skipped" in (skipped.description or "")


def test_a_failing_standalone_audit_fails_its_check_and_the_model_is_still_promoted(
    audits_project: Path,
) -> None:
    _edit(audits_project, "orders.sql", "(3, 10, 7.25)", "(3, 10, -7.25)")

    result = materialize(audits_project)

    assert result.success, result.messages()
    assert result.checks()["shop/orders:assert_orders_positive"] == (False, "WARN")
    metadata = result.check_metadata("assert_orders_positive")
    assert metadata["failed_rows"] == 1
    assert '"amount" < 0' in metadata["audit_query"]
    assert result.materializations()["shop/orders"]["sqlmesh/outcome"] == "evaluated"
    assert query(audits_project / "warehouse.duckdb", "SELECT COUNT(*) FROM shop.orders") == [(3,)]


ORDERS = '"warehouse"."shop"."orders"'


def test_a_selection_runs_the_standalone_audits_whose_check_is_on_a_selected_model(
    audits_project: Path,
) -> None:
    """SQLMesh 0.236 plans a selection without any standalone audit: they are run after it."""
    _edit(audits_project, "orders.sql", "(3, 10, 7.25)", "(3, 10, -7.25)")

    only_orders = materialize(audits_project, selection=["shop/orders"])

    assert only_orders.success, only_orders.messages()
    assert only_orders.checks() == {
        "shop/orders:not_null": (True, "ERROR"),
        "shop/orders:unique_values": (True, "ERROR"),
        "shop/orders:assert_orders_positive": (False, "WARN"),
    }
    metadata = only_orders.check_metadata("assert_orders_positive")
    assert metadata["failed_rows"] == 1
    assert '"amount" < 0' in metadata["audit_query"]
    intervals = _intervals(audits_project)
    assert intervals["assert_orders_positive"] == intervals[ORDERS]
    assert not intervals.get("assert_totals_match_orders")  # its check's model is not selected

    # orders is deployed, customers comes along as missing upstream; orders' audit ran already
    totals = materialize(audits_project, selection=["shop/order_totals"])

    assert totals.success, totals.messages()
    assert totals.checks() == {"shop/order_totals:assert_totals_match_orders": (True, "WARN")}
    assert _intervals(audits_project)["assert_totals_match_orders"] == intervals[ORDERS]


def test_a_run_of_a_selection_runs_the_standalone_audits_on_it(audits_project: Path) -> None:
    """The same without a plan (ADR 7): SQLMesh's run selects models only too."""
    _edit(audits_project, "orders.sql", "(3, 10, 7.25)", "(3, 10, -7.25)")
    assert materialize(audits_project).success
    with opened_context(SQLMeshProject(path=audits_project), load=False) as context:
        for node in (ORDERS, "assert_orders_positive"):
            remove_latest_interval(context, "prod", node)

    result = materialize(audits_project, selection=["shop/orders"])

    assert result.success, result.messages()
    assert result.materializations()["shop/orders"]["sqlmesh/command"] == "run"
    assert result.checks()["shop/orders:assert_orders_positive"] == (False, "WARN")
    assert result.check_metadata("assert_orders_positive")["failed_rows"] == 1
    intervals = _intervals(audits_project)
    assert intervals["assert_orders_positive"] == intervals[ORDERS] != []


@pytest.mark.parametrize("username", [None, "analyst"])
def test_skip_audits_report_nothing_and_a_repeated_audit_reports_to_its_own_check(
    audits_project: Path, username: str | None
) -> None:
    if username:  # SQLMesh then notifies audit failures to that user's targets only
        config = audits_project / "config.yaml"
        config.write_text(f"{config.read_text()}username: {username}\n")

    result = materialize(audits_project)

    checks = result.checks()
    assert not any(name.endswith(":every_row_flagged") for name in checks)
    assert checks["shop/orders:not_null"] == (True, "ERROR")
    assert checks["shop/orders:unique_values"] == (True, "ERROR")
    # min_v := 0 fails on 2026-01-01 (two rows) and 2026-01-03 (one); max_v := 100 on 01-04
    assert checks["shop/daily_amounts:accepted_range_non_blocking"] == (False, "WARN")
    assert checks["shop/daily_amounts:accepted_range_non_blocking_2"] == (False, "WARN")
    first = result.check_metadata("accepted_range_non_blocking")
    second = result.check_metadata("accepted_range_non_blocking_2")
    assert (first["failed_rows"], first["sqlmesh/failed_batches"]) == (3, 2)
    assert (second["failed_rows"], second["sqlmesh/failed_batches"]) == (1, 1)
    assert '"amount" < 0' in first["audit_query"]
    assert '"amount" > 100' in second["audit_query"]
    # the same rows as the audits' own conditions find in the model SQLMesh filled
    db = audits_project / "warehouse.duckdb"
    assert query(db, "SELECT COUNT(*) FROM shop.daily_amounts WHERE amount < 0") == [(3,)]
    assert query(db, "SELECT COUNT(*) FROM shop.daily_amounts WHERE amount > 100") == [(1,)]


def test_a_run_that_evaluates_nothing_reports_no_check_with_audit_unchanged_off(
    audits_project: Path,
) -> None:
    materialize(audits_project)

    again = materialize(audits_project, resource_config={"audit_unchanged": False})

    assert again.success
    assert again.checks() == {}


def test_an_audit_only_edit_reports_the_audits_and_that_no_data_changed(
    audits_project: Path,
) -> None:
    first = materialize(audits_project)
    assert first.success
    before = _intervals(audits_project)
    _edit(
        audits_project,
        "orders.sql",
        "unique_values(columns := (order_id)))",
        "unique_values(columns := (order_id)), accepted_range(column := amount, min_v := 0))",
    )

    result = materialize(audits_project)

    assert result.success, result.messages()
    orders = result.materializations()["shop/orders"]
    assert orders["sqlmesh/outcome"] == "audited"
    assert orders["sqlmesh/data_changed"] is False
    assert "dagster/row_count" not in orders
    assert orders["sqlmesh/intervals"] == []
    checks = {k: v for k, v in result.checks().items() if k.startswith("shop/orders:")}
    assert checks == {
        "shop/orders:not_null": (True, "ERROR"),
        "shop/orders:unique_values": (True, "ERROR"),
        "shop/orders:accepted_range": (True, "ERROR"),
    }
    assert (
        _intervals(audits_project)['"warehouse"."shop"."orders"']
        == (before['"warehouse"."shop"."orders"'])
    )


def test_an_audit_only_edit_whose_blocking_audit_fails_fails_the_model(
    audits_project: Path,
) -> None:
    materialize(audits_project)
    _edit(
        audits_project,
        "orders.sql",
        "unique_values(columns := (order_id)))",
        "unique_values(columns := (order_id)), accepted_range(column := amount, min_v := 10))",
    )

    result = materialize(audits_project)

    assert not result.success
    steps = result.step_statuses()
    assert steps["shop__orders"] == "STEP_FAILURE"
    assert steps["shop__customers"] == "STEP_SUCCESS"
    checks = result.checks()
    assert checks["shop/orders:accepted_range"] == (False, "ERROR")
    assert checks["shop/orders:not_null"] == (True, "ERROR")
    assert result.check_metadata("accepted_range")["failed_rows"] == 1
    assert "accepted_range" in result.failure_message("shop__orders")


def _late_models(project: Path) -> None:
    """New models with nothing due yet (start in the future), so SQLMesh creates their tables in
    its physical-layer stage, and one whose table cannot be created (it reads no table)."""
    models = project / "models"
    (models / "late_broken.sql").write_text(
        "MODEL (name shop.late_broken, kind INCREMENTAL_BY_TIME_RANGE (time_column day),\n"
        "  start '2099-01-01', cron '@daily');\n"
        "SELECT day, amount FROM shop.not_there WHERE day BETWEEN @start_ds AND @end_ds\n"
    )
    (models / "late_child.sql").write_text(
        "MODEL (name shop.late_child, kind FULL, start '2099-01-01');\n"
        "SELECT day FROM shop.late_broken\n"
    )
    (models / "late_ok.sql").write_text(
        "MODEL (name shop.late_ok, kind INCREMENTAL_BY_TIME_RANGE (time_column day),\n"
        "  start '2099-01-01', cron '@daily');\n"
        "SELECT @start_ds::DATE AS day\n"
    )


def test_a_table_sqlmesh_cannot_create_fails_its_model_only(audits_project: Path) -> None:
    assert materialize(audits_project).success
    _late_models(audits_project)

    result = materialize(audits_project)

    assert not result.success
    steps = result.step_statuses()
    assert steps["shop__late_broken"] == "STEP_FAILURE"
    assert steps["shop__late_child"] in {"NOT_EXECUTED", "STEP_SKIPPED"}
    assert steps["shop__late_ok"] == "STEP_SUCCESS"
    assert steps["shop__orders"] == "STEP_SUCCESS"
    message = result.failure_message("shop__late_broken")
    assert "not_there" in message, message
    found = views(audits_project / "warehouse.duckdb")
    assert ("shop", "late_ok") in found and ALL_VIEWS <= found
    assert not {("shop", "late_broken"), ("shop", "late_child")} & found


class _FaultyRecorder(OutcomeRecorder):
    """A recorder whose every recording method raises, as a bug in our code would."""

    def _boom(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in our reporting")

    batches_planned = evaluated = audit_failed = audit_blocked = _boom
    failed = skipped = destructive_change = message = _boom


def test_hooks_that_raise_are_recorded_and_sqlmesh_carries_on(audits_project: Path) -> None:
    recorder = _FaultyRecorder()
    with opened_context(SQLMeshProject(path=audits_project), recorder) as context:
        sqlmesh_api.apply_plan(context, "prod", None)

    assert views(audits_project / "warehouse.duckdb") == ALL_VIEWS
    hooks = {error.split()[2] for error in recorder.hook_errors}
    assert {
        "start_evaluation_progress",
        "update_snapshot_evaluation_progress",
        "audit_failed",
    } <= hooks, recorder.hook_errors


def test_a_standalone_audit_that_cannot_run_fails_the_model_it_reports_on_only(
    audits_project: Path,
) -> None:
    (audits_project / "audits" / "unreadable.sql").write_text(
        "AUDIT (name assert_unreadable, standalone true);\n"
        "SELECT * FROM shop.customers WHERE CAST(name AS INT) = 1\n"
    )

    result = materialize(audits_project)

    assert not result.success
    steps = result.step_statuses()
    assert steps["shop__customers"] == "STEP_FAILURE"
    assert steps["shop__order_totals"] == "NOT_EXECUTED"
    assert steps["shop__orders"] == steps["shop__daily_amounts"] == "STEP_SUCCESS"
    assert "Standalone audit assert_unreadable failed" in result.failure_message("shop__customers")
    assert "shop/customers:assert_unreadable" not in result.checks()
    assert views(audits_project / "warehouse.duckdb") == {
        ("shop", "orders"),
        ("shop", "daily_amounts"),
    }


def test_a_standalone_audit_that_cannot_run_after_a_selection_fails_its_model_only(
    audits_project: Path,
) -> None:
    """Run after the selection's plan, the audit finds its model promoted already."""
    (audits_project / "audits" / "unreadable.sql").write_text(
        "AUDIT (name assert_unreadable, standalone true);\n"
        "SELECT * FROM shop.customers WHERE CAST(name AS INT) = 1\n"
    )

    result = materialize(audits_project, selection=["shop/customers", "shop/orders"])

    assert not result.success
    steps = result.step_statuses()
    assert steps == {"shop__customers": "STEP_FAILURE", "shop__orders": "STEP_SUCCESS"}
    assert "Standalone audit assert_unreadable failed" in result.failure_message("shop__customers")
    assert "shop/customers:assert_unreadable" not in result.checks()
    assert result.checks()["shop/orders:assert_orders_positive"] == (True, "WARN")
    assert views(audits_project / "warehouse.duckdb") == {("shop", "orders"), ("shop", "customers")}
