"""Data versions from SQLMesh's state (ADR 15): real runs of a two-model project, asserted on the
Dagster instance (each materialization's data version), on Dagster's staleness as the UI
computes it (`CachingStaleStatusResolver`), and on SQLMesh's recorded intervals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import chdir
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime
from sqlmesh import Context

from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.run.data_versions import latest_data_version
from tests.conftest import DUCKDB_CONFIG, dagster_home, run_cli
from tests.support.sqlmesh_state import recorded_intervals

EVENTS = dg.AssetKey(["shop", "events"])
TOTALS = dg.AssetKey(["shop", "totals"])
SLOW = dg.AssetKey(["shop", "slow"])
EVENTS_MODEL, TOTALS_MODEL = '"warehouse"."shop"."events"', '"warehouse"."shop"."totals"'
DAILY = "kind INCREMENTAL_BY_TIME_RANGE (time_column ds),\n  start '2026-11-01',\n  cron '@daily'"


def write_shop(project: Path, slow: bool = True) -> Path:
    """Two daily models, totals reading events, and a slow one below: one small project
    written at test time."""
    (project / "models").mkdir(parents=True)
    (project / "config.yaml").write_text(DUCKDB_CONFIG)
    (project / "models" / "events.sql").write_text(
        f"MODEL (\n  name shop.events,\n  {DAILY}\n);\nSELECT @start_ds::DATE AS ds, 1 AS n\n"
    )
    (project / "models" / "totals.sql").write_text(
        f"MODEL (\n  name shop.totals,\n  {DAILY}\n);\n"
        "SELECT ds, SUM(n) AS n FROM shop.events WHERE ds BETWEEN @start_ds AND @end_ds "
        "GROUP BY ds\n"
    )
    # below them, slow enough that their steps report while SQLMesh still works (early reports)
    if slow:
        (project / "models" / "slow.py").write_text(SLOW_MODEL)
    return project


SLOW_MODEL = """\
import time

import pandas as pd
from sqlmesh import model


@model(
    "shop.slow",
    kind="FULL",
    cron="@daily",
    start="2026-11-01",
    columns={"n": "int"},
    depends_on=["shop.totals"],
)
def execute(context, **kwargs):
    time.sleep(3)
    return pd.DataFrame({"n": [1]})
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "shop")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return dagster_home(tmp_path)


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def materialize_cli(home: Path, project: Path, keys: list[dg.AssetKey], execution_time: str):
    """A run of the CLI, whose in-process executor lets each step report its model as soon as
    SQLMesh wrote it (`execute_in_process` steps wait for the whole execution)."""
    config = {"resources": {"sqlmesh": {"config": {"execution_time": execution_time}}}}
    selection = ",".join(key.to_user_string() for key in keys)
    done = run_cli(
        ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions", "--select"]
        + [selection, "--config-json", json.dumps(config)],
        {"DAGSTER_HOME": str(home), "MXM_SQLMESH_PROJECT": str(project)},
    )
    assert done.returncode == 0, done.stderr[-3000:]


def materialize(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    keys: list[dg.AssetKey],
    execution_time: str,
    restate: bool = False,
) -> None:
    config = {"execution_time": execution_time, "restate": restate}
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=keys,
        run_config={"resources": {"sqlmesh": {"config": config}}},
        instance=instance,
    )
    assert result.success


def resolver(defs: dg.Definitions, instance: dg.DagsterInstance) -> CachingStaleStatusResolver:
    """What the UI's asset graph asks (its GraphQL `staleStatus` and `staleCauses`)."""
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    return CachingStaleStatusResolver(instance, graph, view)


def stale_status(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> dict[dg.AssetKey, StaleStatus]:
    statuses = resolver(defs, instance)
    return {key: statuses.get_status(key) for key in (EVENTS, TOTALS)}


def days(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def versions(instance: dg.DagsterInstance) -> dict[dg.AssetKey, str | None]:
    return {key: latest_data_version(instance, key) for key in (EVENTS, TOTALS)}


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    return len(instance.fetch_materializations(key, limit=100).records)


def intervals(project: Path) -> dict[str, list[tuple[int, int]]]:
    """SQLMesh's state, read as `sqlmesh` in the project folder reads it."""
    with chdir(project):
        context = Context(paths=[str(project)])
        try:
            return recorded_intervals(context, "prod")
        finally:
            context.close()


def test_data_versions_follow_sqlmesh_state_and_drive_staleness(
    shop: Path, home: Path, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(SQLMeshProject(path=shop))
    materialize_cli(home, shop, [EVENTS, TOTALS, SLOW], "2026-11-10 00:00:00")
    first = versions(instance)
    assert all(first.values())
    assert first[EVENTS] != first[TOTALS]
    assert stale_status(defs, instance) == {EVENTS: StaleStatus.FRESH, TOTALS: StaleStatus.FRESH}
    filled = intervals(shop)
    # the first run's steps reported as soon as SQLMesh wrote each model (before promotion)
    record = instance.fetch_materializations(EVENTS, limit=1).records[0]
    assert record.asset_materialization.metadata["sqlmesh/reported_before_promotion"].value

    # Up to date: SQLMesh fills nothing, the steps materialize with the same data versions
    # (read from state after the run, where the first run's were read as each model was written)
    materialize(defs, instance, [EVENTS, TOTALS, SLOW], "2026-11-10 00:00:00")
    assert materializations(instance, EVENTS) == 2
    assert versions(instance) == first
    assert intervals(shop) == filled
    assert stale_status(defs, instance) == {EVENTS: StaleStatus.FRESH, TOTALS: StaleStatus.FRESH}

    # A later execution time for events alone: two new days in SQLMesh's state, a new data
    # version, and totals (which read the old days) stale until it is filled too
    materialize(defs, instance, [EVENTS], "2026-11-12 00:00:00")
    grown = intervals(shop)
    assert grown[EVENTS_MODEL] != filled[EVENTS_MODEL]
    assert grown[TOTALS_MODEL] == filled[TOTALS_MODEL]
    second = versions(instance)
    assert second[EVENTS] != first[EVENTS]
    assert second[TOTALS] == first[TOTALS]
    assert stale_status(defs, instance) == {EVENTS: StaleStatus.FRESH, TOTALS: StaleStatus.STALE}
    resolver_causes = resolver(defs, instance).get_stale_root_causes(TOTALS)
    assert [cause.asset_key for cause in resolver_causes] == [EVENTS]

    materialize(defs, instance, [TOTALS], "2026-11-12 00:00:00")
    third = versions(instance)
    assert third[TOTALS] != second[TOTALS]
    assert third[EVENTS] == second[EVENTS]
    assert stale_status(defs, instance) == {EVENTS: StaleStatus.FRESH, TOTALS: StaleStatus.FRESH}

    # A restatement recomputes the same intervals: new data, so a new data version; SQLMesh
    # restates totals below it in the same run, recorded beyond the selection: fresh again
    materialize(defs, instance, [EVENTS], "2026-11-12 00:00:00", restate=True)
    assert intervals(shop)[EVENTS_MODEL] == grown[EVENTS_MODEL]
    restated = versions(instance)
    assert restated[EVENTS] != third[EVENTS] and restated[TOTALS] != third[TOTALS]
    assert stale_status(defs, instance) == {EVENTS: StaleStatus.FRESH, TOTALS: StaleStatus.FRESH}


def test_models_beyond_the_selection_and_partitions_carry_the_data_version(
    shop: Path, instance: dg.DagsterInstance
) -> None:
    """Totals selected alone at a later time makes SQLMesh fill events too (finalize records
    it); with partitions every partition record carries the model's data version."""
    defs = build_definitions(SQLMeshProject(path=shop), partitions=True)
    job = defs.resolve_implicit_global_asset_job_def()
    # a prod range is planned as of its end (README, Partitions): 11-10 00:00, then 11-11
    result = job.execute_in_process(
        asset_selection=[EVENTS, TOTALS], tags=days("2026-11-01", "2026-11-09"), instance=instance
    )
    assert result.success
    first = versions(instance)
    assert all(first.values())
    records = instance.fetch_materializations(EVENTS, limit=100).records
    assert {r.partition_key for r in records} == {f"2026-11-0{d}" for d in range(1, 10)}
    assert {r.asset_materialization.tags["dagster/data_version"] for r in records} == {
        first[EVENTS]
    }

    # totals alone for the next day: SQLMesh fills events' day too, beyond the selection
    result = job.execute_in_process(
        asset_selection=[TOTALS], tags=days("2026-11-10", "2026-11-10"), instance=instance
    )
    assert result.success
    second = versions(instance)
    assert second[EVENTS] != first[EVENTS]
    assert second[TOTALS] != first[TOTALS]
    latest = instance.fetch_materializations(EVENTS, limit=1).records[0]
    assert latest.partition_key == "2026-11-10"
    tags = instance.fetch_materializations(TOTALS, limit=1).records[0].asset_materialization.tags
    assert tags["dagster/data_version"] == second[TOTALS]
    assert intervals(shop)[EVENTS_MODEL][-1][1] == intervals(shop)[TOTALS_MODEL][-1][1]


def test_an_edited_model_shows_a_new_code_version_until_a_run_plans_it(
    shop: Path, instance: dg.DagsterInstance
) -> None:
    (shop / "models" / "slow.py").unlink()
    defs = build_definitions(SQLMeshProject(path=shop))
    materialize(defs, instance, [EVENTS, TOTALS], "2026-11-10 00:00:00")
    before = versions(instance)
    model = shop / "models" / "events.sql"
    model.write_text(model.read_text().replace("1 AS n", "2 AS n"))  # a breaking change

    edited = build_definitions(SQLMeshProject(path=shop))
    assert stale_status(edited, instance)[EVENTS] == StaleStatus.STALE
    causes = resolver(edited, instance).get_stale_causes(EVENTS)
    assert [c.reason for c in causes] == ["has a new code version"]

    # the plan backfills events into a new table and totals below it: new data versions
    materialize(edited, instance, [EVENTS, TOTALS], "2026-11-10 00:00:00")
    after = versions(instance)
    assert after[EVENTS] != before[EVENTS] and after[TOTALS] != before[TOTALS]
    assert stale_status(edited, instance) == {EVENTS: StaleStatus.FRESH, TOTALS: StaleStatus.FRESH}
