"""Dagster partitions over SQLMesh intervals: the reference flow, real runs, real warehouse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from mxm_dagster import partitions, sqlmesh_api
from mxm_dagster.project import SQLMeshProject
from mxm_dagster.specs import ModelSpec
from tests.conftest import (
    REFERENCE_PROJECT,
    copy_project,
    dagster_home,
    environment,
    executions_in_results_file,
    materialize,
    query,
    run_cli,
    runs,
)

QUOTES = dg.AssetKey(["staging", "stg_daily_quotes"])
RETURNS = dg.AssetKey(["marts", "daily_returns"])
QUOTES_MODEL = '"justetf"."staging"."stg_daily_quotes"'
SQLMESH_STARTS = "Running SQLMesh for"


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()


def recorded_days(project: Path, model: str) -> set[str]:
    """The days SQLMesh recorded as filled for `model` in prod."""
    context = SQLMeshProject(path=project).open_context()
    try:
        intervals = sqlmesh_api.recorded_intervals(context, "prod").get(model, [])
    finally:
        sqlmesh_api.close_context(context)
    days: set[str] = set()
    for start, end in intervals:
        days.update(_day(ms) for ms in range(start, end, 86_400_000))
    return days


def materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    return set(instance.get_materialized_partitions(key))


@pytest.fixture
def reference_project(tmp_path: Path) -> Path:
    return copy_project(REFERENCE_PROJECT, tmp_path / "justetf")


def test_mapping_follows_the_model() -> None:
    hourly = ModelSpec(
        name="m",
        catalog=None,
        schema="s",
        table="t",
        kind="INCREMENTAL_BY_TIME_RANGE",
        cron="@hourly",
        interval_unit="hour",
        start_ms=partitions.to_ms(dt.datetime(2024, 3, 1, tzinfo=dt.UTC)),
    )
    hourly_def = partitions.partitions_def_for(hourly)
    assert hourly_def is not None
    assert hourly_def.get_first_partition_key() == "2024-03-01-00:00"
    start, end = partitions.window_for_keys(hourly_def, "2024-03-01-05:00", "2024-03-01-06:00")
    assert (start.hour, end.hour) == (5, 7)
    assert partitions.keys_for_intervals(
        hourly_def, [(partitions.to_ms(start), partitions.to_ms(end))]
    ) == ["2024-03-01-05:00", "2024-03-01-06:00"]
    full = ModelSpec(name="f", catalog=None, schema="s", table="f", kind="FULL", cron="@daily")
    assert partitions.partitions_def_for(full) is None
    assert partitions.dagster_cron("@daily") == "0 0 * * *"


def year_tags(first: str = "2023-01-02", last: str = "2023-12-31") -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def test_year_backfill_in_one_run_then_up_to_date(reference_project: Path) -> None:
    """A year of daily partitions and every unpartitioned model in one run and one SQLMesh
    execution; each partition recorded exactly as SQLMesh recorded its interval."""
    instance = dg.DagsterInstance.ephemeral()
    run = materialize(reference_project, instance=instance, tags=year_tags())
    assert run.success
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 1

    days = recorded_days(reference_project, QUOTES_MODEL)
    assert min(days) == "2023-01-02" and max(days) == "2023-12-31" and len(days) == 364
    assert materialized_partitions(instance, QUOTES) == days
    assert materialized_partitions(instance, RETURNS) == days
    database = reference_project / "justetf.duckdb"
    assert query(database, "SELECT MAX(trade_date) FROM staging.stg_daily_quotes") == [
        (dt.date(2023, 12, 29),)
    ]
    # the unpartitioned marts ran in the same run, over the year that was filled
    assert query(database, "SELECT MAX(as_of_date) FROM marts.risk_metrics") == [
        (dt.date(2023, 12, 29),)
    ]

    rerun = materialize(reference_project, instance=instance, tags=year_tags())
    assert rerun.success
    outcomes = {m.get("sqlmesh/outcome") for m in rerun.materializations().values()}
    assert outcomes == {"up_to_date", None}  # None: the landing asset, not a SQLMesh model
    assert rerun.checks() == {}
    assert recorded_days(reference_project, QUOTES_MODEL) == days


def test_cli_partition_range_over_the_whole_flow(reference_project: Path, tmp_path: Path) -> None:
    """Dagster's CLI refuses `--select '*'` over partitioned assets without a partition; with
    `--partition-range` the mixed selection is one run (every asset has a single-run policy)."""
    home = dagster_home(tmp_path)
    env = environment(reference_project, home)
    command = ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions", "--select", "*"]
    refused = run_cli(command, env)
    assert refused.returncode != 0
    assert "no '--partition' option was provided" in refused.stderr

    done = run_cli([*command, "--partition-range", "2023-01-02...2023-02-28"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 1
    assert executions_in_results_file(home, run.run_id) == 1
    days = recorded_days(reference_project, QUOTES_MODEL)
    assert min(days) == "2023-01-02" and max(days) == "2023-02-28" and len(days) == 58
    assert materialized_partitions(run.instance, QUOTES) == days
    assert run.materializations()["marts/fund_overview"]["sqlmesh/outcome"] == "evaluated"


def test_range_restatement_recomputes_only_that_range(reference_project: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    january = year_tags("2023-01-02", "2023-01-31")
    selection = ["landing/etf_daily_quotes", "staging/stg_daily_quotes"]
    first = materialize(reference_project, selection, instance=instance, tags=january)
    assert first.success
    assert len(materialized_partitions(instance, QUOTES)) == 30

    restate = {**year_tags("2023-01-10", "2023-01-12"), "mxm/restate": "true"}
    result = materialize(reference_project, ["staging/stg_daily_quotes"], instance, restate)
    assert result.success
    meta = result.materializations()["staging/stg_daily_quotes"]
    assert meta["sqlmesh/outcome"] == "evaluated" and meta["sqlmesh/restated"] is True
    assert _days_of(meta["sqlmesh/intervals"]) == {"2023-01-10", "2023-01-11", "2023-01-12"}
    assert recorded_days(reference_project, QUOTES_MODEL) == materialized_partitions(
        instance, QUOTES
    )

    # without restatement the same range is up to date: nothing recomputed
    plain = {k: v for k, v in restate.items() if k != "mxm/restate"}
    again = materialize(reference_project, ["staging/stg_daily_quotes"], instance, plain)
    assert again.materializations()["staging/stg_daily_quotes"]["sqlmesh/outcome"] == "up_to_date"


def _days_of(intervals: list[list[str]]) -> set[str]:
    days: set[str] = set()
    for start, end in intervals:
        day = dt.datetime.fromisoformat(start)
        while day < dt.datetime.fromisoformat(end):
            days.add(day.date().isoformat())
            day += dt.timedelta(days=1)
    return days


def test_unpartitioned_mart_after_a_backfill_reads_what_was_filled(
    reference_project: Path,
) -> None:
    """Selecting a downstream unpartitioned mart plans it as usual over the upstream intervals
    SQLMesh has; the partitioned upstream is not extended by that run."""
    instance = dg.DagsterInstance.ephemeral()
    q1 = year_tags("2023-01-02", "2023-03-31")
    selection = ["landing/etf_daily_quotes", "staging/stg_daily_quotes", "marts/daily_returns"]
    assert materialize(reference_project, selection, instance=instance, tags=q1).success
    filled = materialized_partitions(instance, QUOTES)

    result = materialize(reference_project, ["marts/monthly_returns"], instance=instance)
    assert result.success
    mats = result.materializations()
    assert mats["marts/monthly_returns"]["sqlmesh/outcome"] == "evaluated"
    assert "staging/stg_daily_quotes" not in mats
    assert materialized_partitions(instance, QUOTES) == filled
    database = reference_project / "justetf.duckdb"
    assert query(database, "SELECT MAX(month_end_date) FROM marts.monthly_returns") == [
        (dt.date(2023, 3, 31),)
    ]
