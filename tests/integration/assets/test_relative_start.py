"""A relative `start` ('3 days ago') resolves against the clock: the cached spec holds only until
it would resolve into another interval, and the partitions definition moves with it. The clock is
moved with time-machine (SQLMesh's own test dependency); SQLMesh loads the project for real."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import time_machine
from sqlmesh.core.node import IntervalUnit

from mxm_dagster.child.sqlmesh_api import bounds
from mxm_dagster.code_location import build_definitions
from mxm_dagster.common.times import to_ms
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import DUCKDB_CONFIG

EVENTS = dg.AssetKey(["shop", "events"])
DAY_ONE = datetime(2026, 12, 10, 12, tzinfo=UTC)


def shop_project(tmp_path: Path, start: str) -> Path:
    project = tmp_path / "shop"
    (project / "models").mkdir(parents=True)
    (project / "config.yaml").write_text(DUCKDB_CONFIG)
    (project / "models" / "events.sql").write_text(
        "MODEL (\n  name shop.events,\n  kind INCREMENTAL_BY_TIME_RANGE (time_column ds),\n"
        f"  start '{start}',\n  cron '@daily'\n);\nSELECT @start_ds::DATE AS ds, 1 AS n\n"
    )
    return project


def first_partition(project: Path) -> str | None:
    graph = build_definitions(SQLMeshProject(path=project), partitions=True).resolve_asset_graph()
    partitions_def = graph.get(EVENTS).partitions_def
    assert partitions_def is not None
    return partitions_def.get_first_partition_key()


def test_a_relative_start_is_resolved_again_once_it_moves_to_another_day(tmp_path: Path) -> None:
    project = shop_project(tmp_path, "3 days ago")
    spec_file = SQLMeshProject(path=project).spec_file()
    with time_machine.travel(DAY_ONE):
        assert first_partition(project) == "2026-12-07"
        spec = SQLMeshProject(path=project).load_spec()
        # '3 days ago' counts from midnight UTC (SQLMesh): it moves at the next midnight
        assert spec.valid_until == to_ms(datetime(2026, 12, 11, tzinfo=UTC))
        written = spec_file.stat().st_mtime_ns

    with time_machine.travel(datetime(2026, 12, 10, 23, 59, tzinfo=UTC)):
        assert first_partition(project) == "2026-12-07"
        assert spec_file.stat().st_mtime_ns == written  # still holds: not loaded again

    with time_machine.travel(DAY_ONE + timedelta(days=2)):
        assert first_partition(project) == "2026-12-09"  # was a stale 12-07 before
        assert spec_file.stat().st_mtime_ns != written
        spec = SQLMeshProject(path=project).load_spec()
        assert spec.valid_until == to_ms(datetime(2026, 12, 13, tzinfo=UTC))
        (model,) = [m for m in spec.models if m.is_model]
        assert model.start == "3 days ago"
        assert model.start_ms == to_ms(datetime(2026, 12, 9, tzinfo=UTC))


def test_an_absolute_start_never_expires_the_spec(tmp_path: Path) -> None:
    project = shop_project(tmp_path, "2026-11-01")
    with time_machine.travel(DAY_ONE):
        assert SQLMeshProject(path=project).load_spec().valid_until is None
        assert first_partition(project) == "2026-11-01"


def test_a_relative_start_moving_with_the_clock_holds_until_it_reaches_the_next_day() -> None:
    """'36 hours ago' is not counted from midnight: at 12-10 12:00 it is 12-09 00:00, and it
    stays in that day until 12-11 12:00, when it reaches 12-10."""
    day = IntervalUnit.DAY
    until = bounds.holds_until("36 hours ago", day, DAY_ONE)
    assert until is not None
    expected = to_ms(datetime(2026, 12, 11, 12, tzinfo=UTC))
    assert expected - 1000 <= until <= expected
    assert bounds.holds_until("2026-11-01", day, DAY_ONE) is None
