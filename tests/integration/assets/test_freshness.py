"""Freshness from SQLMesh crons (ADR 17): real runs at pinned times, then Dagster's own freshness
daemon and the UI's GraphQL field asked at pinned times, compared with SQLMesh's missing
intervals. Dagster's clock is pinned with its `freeze_time` (the runs' events and the daemon's
evaluation), SQLMesh's with the run's `execution_time`: the wall clock plays no part. The
policies are opt-in: every test here turns on MXM_SQLMESH_FRESHNESS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import chdir
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.freshness import FreshnessDaemon
from dagster_graphql.test.utils import execute_dagster_graphql
from sqlmesh import Context

from mxm_dagster.assets.freshness import FRESHNESS_ENV
from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.integration.run.test_data_versions import (
    EVENTS,
    EVENTS_MODEL,
    TOTALS,
    TOTALS_MODEL,
    write_shop,
)
from tests.support.sqlmesh_state import recorded_intervals

DAY_MS = 24 * 3600 * 1000
START = datetime(2026, 11, 1, tzinfo=UTC)

FRESHNESS_QUERY = """
query {
  assetNodes { assetKey { path } freshnessStatusInfo { freshnessStatus } }
}
"""


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def missing_days(project: Path, now: datetime) -> dict[str, list[str]]:
    """Per model: the days SQLMesh's state lacks among those its `@daily` cron made due by `now`
    (every day that ended at or before the last midnight), read as `sqlmesh` reads it."""
    with chdir(project):
        context = Context(paths=[str(project)])
        try:
            recorded = recorded_intervals(context, "prod")
        finally:
            context.close()
    last_tick = now.replace(hour=0, minute=0, second=0, microsecond=0)
    due = range(int(START.timestamp() * 1000), int(last_tick.timestamp() * 1000), DAY_MS)
    missing: dict[str, list[str]] = {}
    for model in (EVENTS_MODEL, TOTALS_MODEL):
        filled = recorded.get(model, [])
        missing[model] = [
            datetime.fromtimestamp(day / 1000, tz=UTC).date().isoformat()
            for day in due
            if not any(a <= day and day + DAY_MS <= b for a, b in filled)
        ]
    return missing


@pytest.fixture(autouse=True)
def freshness_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Freshness policies are opt-in (ADR 17): the code location's switch, as a deployment sets
    it, for both the definitions built here and those the workspace loads."""
    monkeypatch.setenv(FRESHNESS_ENV, "on")


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_shop(tmp_path / "shop", slow=False)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def workspace(
    shop: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> Iterator[WorkspaceProcessContext]:
    """The code location as the daemon and the webserver load it (in this process)."""
    module = tmp_path / "shop_defs.py"
    module.write_text(
        "from mxm_dagster.code_location import build_definitions\n"
        "from mxm_dagster.project.sqlmesh_project import SQLMeshProject\n"
        f"defs = build_definitions(SQLMeshProject(path={str(shop)!r}))\n"
    )
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(module), attribute="defs")
    )
    with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as context:
        yield context


def run_at(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[dg.AssetKey], now: datetime
) -> None:
    """A run at `now` for Dagster (its events' timestamps) and for SQLMesh (execution time)."""
    config = {"execution_time": now.strftime("%Y-%m-%d %H:%M:%S")}
    with freeze_time(now):
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            asset_selection=keys,
            run_config={"resources": {"sqlmesh": {"config": config}}},
            instance=instance,
        )
    assert result.success


def daemon_states(
    workspace: WorkspaceProcessContext, instance: dg.DagsterInstance, now: datetime
) -> dict[dg.AssetKey, FreshnessState]:
    """One iteration of Dagster's freshness daemon at `now`, and the states it stored."""
    with freeze_time(now):
        list(FreshnessDaemon().run_iteration(workspace))
    records = instance.get_freshness_state_records([EVENTS, TOTALS])
    return {key: record.freshness_state for key, record in records.items()}


def ui_states(workspace: WorkspaceProcessContext, now: datetime) -> dict[dg.AssetKey, str]:
    """What the UI's asset pages ask (GraphQL `freshnessStatusInfo`)."""
    with freeze_time(now):
        result = execute_dagster_graphql(workspace.create_request_context(), FRESHNESS_QUERY)
    assert result.errors is None, result.errors
    return {
        dg.AssetKey(node["assetKey"]["path"]): node["freshnessStatusInfo"]["freshnessStatus"]
        for node in result.data["assetNodes"]
        if node["freshnessStatusInfo"]
    }


def test_a_model_with_a_missed_day_is_stale_once_its_grace_has_passed(
    shop: Path, instance: dg.DagsterInstance, workspace: WorkspaceProcessContext
) -> None:
    """Both models are `@daily` (ticks at midnight UTC), grace one hour. Day 10: both filled.
    Day 11 at 00:30 only events runs, so totals misses the day 11-10. Dagster agrees with
    SQLMesh's state at each pinned moment: fresh within the grace, overdue after it, fresh
    again once a run fills the day."""
    defs = build_definitions(SQLMeshProject(path=shop))
    policy = defs.resolve_assets_def(TOTALS).specs_by_key[TOTALS].freshness_policy
    assert policy == dg.FreshnessPolicy.cron(
        deadline_cron="0 1 * * *", lower_bound_delta=timedelta(hours=1)
    )

    run_at(defs, instance, [EVENTS, TOTALS], at(10, 0, 30))
    run_at(defs, instance, [EVENTS], at(11, 0, 30))

    within_grace = at(11, 0, 45)
    assert missing_days(shop, within_grace) == {EVENTS_MODEL: [], TOTALS_MODEL: ["2026-11-10"]}
    assert daemon_states(workspace, instance, within_grace) == {
        EVENTS: FreshnessState.PASS,
        TOTALS: FreshnessState.PASS,
    }

    overdue = at(11, 1, 30)
    assert missing_days(shop, overdue) == {EVENTS_MODEL: [], TOTALS_MODEL: ["2026-11-10"]}
    assert daemon_states(workspace, instance, overdue) == {
        EVENTS: FreshnessState.PASS,
        TOTALS: FreshnessState.FAIL,
    }
    assert ui_states(workspace, overdue) == {EVENTS: "HEALTHY", TOTALS: "DEGRADED"}

    run_at(defs, instance, [TOTALS], at(11, 1, 40))
    filled = at(11, 1, 45)
    assert missing_days(shop, filled) == {EVENTS_MODEL: [], TOTALS_MODEL: []}
    assert daemon_states(workspace, instance, filled) == {
        EVENTS: FreshnessState.PASS,
        TOTALS: FreshnessState.PASS,
    }
    assert ui_states(workspace, filled) == {EVENTS: "HEALTHY", TOTALS: "HEALTHY"}
