"""The observing sensor (ADR 15): a real SQLMesh run made outside Dagster between two ticks on a
real instance is reported once, for exactly the models it changed, with the data version SQLMesh's
state gives; a Dagster run's own changes are never reported."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import chdir
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from sqlmesh import Context

from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.run.data_versions import latest_data_version
from tests.integration.run.test_data_versions import (
    EVENTS,
    EVENTS_MODEL,
    TOTALS,
    TOTALS_MODEL,
    days,
    intervals,
    materialize,
    stale_status,
    write_shop,
)

SENSOR = "sqlmesh_observe"
EMPTY = "Sensor function returned an empty result"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "shop", slow=False)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[dg.AssetMaterialization], str | None]:
    """One evaluation; its events are stored as the sensor daemon stores them."""
    sensor = defs.resolve_sensor_def(SENSOR)
    result = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    )
    # Dagster's note for a tick with nothing to report; any other skip is the sensor's own
    assert result.skip_message in (None, EMPTY), result.skip_message
    events = [e for e in result.asset_events if isinstance(e, dg.AssetMaterialization)]
    for event in events:
        instance.report_runless_asset_event(event)
    return events, result.cursor


def sqlmesh_run_outside_dagster(project: Path, models: list[str], execution_time: str) -> None:
    """What a data engineer's `sqlmesh run --select-model ...` in the project folder does, as of
    a fixed time (the CLI's run has no execution time option)."""
    with chdir(project):
        context = Context(paths=[str(project)])
        try:
            context.run(
                "prod", select_models=models, execution_time=execution_time, end=execution_time
            )
        finally:
            context.close()


def test_the_sensor_is_stopped_unless_switched_on(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = build_definitions(SQLMeshProject(path=shop))
    assert defs.resolve_sensor_def(SENSOR).default_status == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv("MXM_SQLMESH_OBSERVE", "on")
    defs = build_definitions(SQLMeshProject(path=shop))
    assert defs.resolve_sensor_def(SENSOR).default_status == dg.DefaultSensorStatus.RUNNING


def test_a_sqlmesh_run_outside_dagster_is_reported_once(
    shop: Path, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(SQLMeshProject(path=shop))
    materialize(defs, instance, [EVENTS, TOTALS], "2026-11-10 00:00:00")
    dagster_versions = {key: latest_data_version(instance, key) for key in (EVENTS, TOTALS)}

    # A Dagster run recorded everything SQLMesh did: nothing to report
    reported, cursor = tick(defs, instance, None)
    assert reported == []

    before = intervals(shop)
    sqlmesh_run_outside_dagster(shop, ["shop.events"], "2026-11-12 00:00:00")
    after = intervals(shop)
    assert after[EVENTS_MODEL] != before[EVENTS_MODEL]  # two more days, in SQLMesh's state
    assert after[TOTALS_MODEL] == before[TOTALS_MODEL]

    reported, cursor = tick(defs, instance, cursor)
    assert [event.asset_key for event in reported] == [EVENTS]
    (event,) = reported
    assert "outside Dagster" in (event.description or "")
    assert event.metadata["sqlmesh/command"].value == "outside_dagster"
    assert event.metadata["sqlmesh/model"].value == EVENTS_MODEL
    assert event.metadata["sqlmesh/view"].value
    latest = instance.fetch_materializations(EVENTS, limit=1).records[0]
    assert latest.run_id == ""  # runless: no Dagster run made it
    assert latest_data_version(instance, EVENTS) not in (None, dagster_versions[EVENTS])
    assert latest_data_version(instance, TOTALS) == dagster_versions[TOTALS]
    # the UI now sees what SQLMesh did: totals reads days events has moved past
    assert stale_status(defs, instance)[TOTALS] == StaleStatus.STALE

    # Never twice: not with the cursor, and not from the instance alone
    assert tick(defs, instance, cursor)[0] == []
    assert tick(defs, instance, None)[0] == []

    # A Dagster run that fills totals up to the same time records its own change: not reported
    materialize(defs, instance, [TOTALS], "2026-11-12 00:00:00")
    assert latest_data_version(instance, TOTALS) != dagster_versions[TOTALS]
    assert tick(defs, instance, cursor)[0] == []
    assert stale_status(defs, instance)[TOTALS] == StaleStatus.FRESH


def test_partitions_sqlmesh_filled_outside_dagster_are_reported_each(
    shop: Path, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(SQLMeshProject(path=shop), partitions=True)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        asset_selection=[EVENTS, TOTALS], tags=days("2026-11-01", "2026-11-09"), instance=instance
    )
    assert result.success
    reported, cursor = tick(defs, instance, None)
    assert reported == []

    sqlmesh_run_outside_dagster(shop, ["shop.events"], "2026-11-12 00:00:00")
    reported, cursor = tick(defs, instance, cursor)
    assert sorted((e.asset_key, e.partition) for e in reported) == [
        (EVENTS, "2026-11-10"),
        (EVENTS, "2026-11-11"),
    ]
    version = latest_data_version(instance, EVENTS)
    assert {e.tags["dagster/data_version"] for e in reported} == {version}
    every_day = {f"2026-11-{day:02d}" for day in range(1, 12)}
    assert instance.get_materialized_partitions(EVENTS) == every_day
    assert tick(defs, instance, cursor)[0] == []
