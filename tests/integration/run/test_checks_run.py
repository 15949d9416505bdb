"""Checks that really run: executing checks alone, and the checks of a model found up to date.

Real SQLMesh on real DuckDB through real Dagster runs, on `tests/fixtures/audits_project`. Every
assertion reads the check evaluations the Dagster instance recorded (docs/adr/0012; an up-to-date
model's audits run again only with `audit_unchanged`, docs/adr/0019).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from mxm_dagster.run.events import AUDITS_NOT_RUN_AGAIN
from tests.conftest import (
    REPO,
    RunOutcome,
    copy_project,
    definitions_for,
    materialize,
    query,
)

AUDITS_PROJECT = REPO / "tests" / "fixtures" / "audits_project"
ORDERS = dg.AssetKey(["shop", "orders"])
ORDERS_CHECKS = {
    "shop/orders:not_null",
    "shop/orders:unique_values",
    "shop/orders:assert_orders_positive",
}


SUCCEEDED = AssetCheckExecutionRecordStatus.SUCCEEDED
PLANNED = AssetCheckExecutionRecordStatus.PLANNED


def _evaluated(records: list[AssetCheckExecutionRecord]) -> list[AssetCheckExecutionRecord]:
    """The executions that recorded a result (a planned one that reported nothing has none)."""
    done = (SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED)
    return [record for record in records if record.status in done]


@pytest.fixture
def audits_project(tmp_path: Path) -> Path:
    return copy_project(AUDITS_PROJECT, tmp_path / "audits")


def _run_checks_alone(
    project: Path, instance: dg.DagsterInstance, assets: list[dg.AssetKey]
) -> RunOutcome:
    """A run of the checks of `assets` without the assets, as the UI's "Execute all" of a
    Checks tab launches it."""
    defs = definitions_for(project)
    selection = dg.AssetSelection.checks_for_assets(*assets)  # the checks, not the assets
    result = dg.materialize(
        list(defs.assets or []),
        selection=selection,
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )
    return RunOutcome(instance, result.run_id, result.success)


def test_checks_alone_run_their_audits_on_the_current_data(audits_project: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    built = materialize(audits_project, instance=instance)
    assert built.success
    table = built.materializations()["shop/orders"]["sqlmesh/physical_table"]

    result = _run_checks_alone(audits_project, instance, [ORDERS])

    assert result.success, result.messages()
    assert result.materializations() == {}  # nothing evaluated, nothing materialized
    checks = result.checks()
    assert set(checks) == ORDERS_CHECKS
    assert all(passed for passed, _ in checks.values())
    assert result.check_metadata("unique_values")["sqlmesh/data_unchanged"] is True

    with duckdb.connect(str(audits_project / "warehouse.duckdb")) as connection:
        connection.execute(f"UPDATE {table} SET order_id = 1")

    broken = _run_checks_alone(audits_project, instance, [ORDERS])

    checks = broken.checks()
    assert checks["shop/orders:unique_values"] == (False, "ERROR")
    assert checks["shop/orders:not_null"] == (True, "ERROR")
    failed = broken.check_metadata("unique_values")
    assert failed["sqlmesh/data_unchanged"] is True
    # the rows SQLMesh's audit query returns on the broken table, counted by DuckDB itself
    audit_query = failed["audit_query"].removeprefix("```sql\n").removesuffix("\n```")
    assert (
        failed["failed_rows"]
        == query(audits_project / "warehouse.duckdb", f"SELECT COUNT(*) FROM ({audit_query})")[0][0]
    )
    assert failed["failed_rows"] > 0
    assert broken.materializations() == {}
    # the check is blocking (ERROR): Dagster fails the step of a failed blocking check
    assert broken.step_statuses() == {"shop__orders": "STEP_FAILURE"}


def test_a_model_never_built_reports_no_check_and_says_why(audits_project: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()

    result = _run_checks_alone(audits_project, instance, [ORDERS])

    assert result.success, result.messages()
    assert result.checks() == {}
    assert any("No check result for" in m for m in result.messages())


def test_with_audit_unchanged_an_up_to_date_model_has_its_checks_run_on_unchanged_data(
    audits_project: Path,
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(audits_project, instance=instance).success

    again = materialize(
        audits_project, instance=instance, resource_config={"audit_unchanged": True}
    )

    assert again.success, again.messages()
    orders = again.materializations()["shop/orders"]
    assert orders["sqlmesh/outcome"] == "up_to_date"
    assert orders["sqlmesh/data_changed"] is False
    checks = again.checks()
    assert ORDERS_CHECKS <= set(checks)
    assert all(checks[name][0] for name in ORDERS_CHECKS)
    assert again.check_metadata("not_null")["sqlmesh/data_unchanged"] is True
    # an incremental model: every recorded day audited, the two failing days counted
    amounts = again.check_metadata("accepted_range_non_blocking")
    assert amounts["sqlmesh/data_unchanged"] is True
    assert checks["shop/daily_amounts:accepted_range_non_blocking"] == (False, "WARN")


def test_by_default_an_up_to_date_model_reports_no_check_and_says_why(
    audits_project: Path,
) -> None:
    """ADR 19: unchanged data is not audited again; its earlier results stay in the instance."""
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(audits_project, instance=instance).success
    not_null = dg.AssetCheckKey(dg.AssetKey(["shop", "orders"]), "not_null")
    first = instance.event_log_storage.get_asset_check_execution_history(not_null, limit=5)

    again = materialize(audits_project, instance=instance)

    assert again.success, again.messages()
    orders = again.materializations()["shop/orders"]
    assert orders["sqlmesh/outcome"] == "up_to_date"
    assert orders["sqlmesh/audits"] == AUDITS_NOT_RUN_AGAIN
    assert again.checks() == {}
    # the first run's result is still the check's latest evaluation, from the first run
    history = instance.event_log_storage.get_asset_check_execution_history(not_null, limit=5)
    assert [r.run_id for r in _evaluated(history)] == [r.run_id for r in _evaluated(first)]
    assert _evaluated(history) and _evaluated(history)[0].status is SUCCEEDED
    assert {r.status for r in history if r.run_id == again.run_id} <= {PLANNED}
