"""Dagster partitions over SQLMesh intervals: opt-in, and when on, a partition is materialized only
if SQLMesh recorded its interval in that run. Real runs, real warehouses."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

import dagster as dg
import pytest

from mxm_dagster.asset_graph import partitions
from mxm_dagster.assets.loader import RESOURCE_KEY, build_sqlmesh_assets
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.child.project import opened_context
from mxm_dagster.code_location import build_definitions
from mxm_dagster.common.times import to_ms
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.specs import ModelSpec
from mxm_dagster.run.resource import SQLMeshResultsResource
from tests.conftest import (
    DUCKDB_CONFIG,
    REFERENCE_PROJECT,
    REPO,
    RunOutcome,
    copy_project,
    dagster_home,
    environment,
    executions_in_results_file,
    materialize,
    query,
    run_cli,
    runs,
)
from tests.support.sqlmesh_state import prod_planned_once, recorded_intervals, written_twice

QUOTES = dg.AssetKey(["staging", "stg_daily_quotes"])
RETURNS = dg.AssetKey(["marts", "daily_returns"])
QUOTES_MODEL = '"justetf"."staging"."stg_daily_quotes"'
SQLMESH_STARTS = "Running SQLMesh for"
ALREADY_RECORDED = "already recorded by SQLMesh (materialized in an earlier run), not restated"


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()


def recorded_days(project: Path, model: str) -> set[str]:
    """The days SQLMesh recorded as filled for `model` in prod."""
    with opened_context(SQLMeshProject(path=project)) as context:
        intervals = recorded_intervals(context, "prod").get(model, [])
    days: set[str] = set()
    for start, end in intervals:
        days.update(_day(ms) for ms in range(start, end, 86_400_000))
    return days


def sqlmesh_ran_once(project: Path) -> bool:
    """SQLMesh's state on a fresh warehouse: one plan made prod, no interval written twice."""
    database = project / "justetf.duckdb"
    return prod_planned_once(database) and not written_twice(database)


def materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    return set(instance.get_materialized_partitions(key))


@pytest.fixture
def partitions_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(partitions.PARTITIONS_ENV, "on")


@pytest.fixture
def reference_project(tmp_path: Path) -> Path:
    return copy_project(REFERENCE_PROJECT, tmp_path / "justetf")


def materializations_of(run: RunOutcome, key: dg.AssetKey) -> list[dg.AssetMaterialization]:
    return [
        e.event_specific_data.materialization
        for e in run.events("ASSET_MATERIALIZATION")
        if e.asset_key == key
    ]


def test_mapping_follows_the_model() -> None:
    hourly = ModelSpec(
        name="m",
        catalog=None,
        schema="s",
        table="t",
        kind="INCREMENTAL_BY_TIME_RANGE",
        cron="@hourly",
        interval_unit="hour",
        start_ms=to_ms(dt.datetime(2024, 3, 1, tzinfo=dt.UTC)),
    )
    hourly_def = partitions.partitions_def_from_model(hourly)
    assert hourly_def is not None
    assert hourly_def.get_first_partition_key() == "2024-03-01-00:00"
    start, end = partitions.window_for_keys(hourly_def, "2024-03-01-05:00", "2024-03-01-06:00")
    assert (start.hour, end.hour) == (5, 7)
    assert partitions.keys_for_intervals(hourly_def, [(to_ms(start), to_ms(end))]) == [
        "2024-03-01-05:00",
        "2024-03-01-06:00",
    ]
    full = ModelSpec(name="f", catalog=None, schema="s", table="f", kind="FULL", cron="@daily")
    assert partitions.partitions_def_from_model(full) is None
    assert partitions.dagster_cron("@daily") == "0 0 * * *"
    # a daily interval of a `0 6 * * *` model is due at 06:00 after its end, not at midnight
    end = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    assert not partitions.is_due("0 6 * * *", None, end, end)
    assert partitions.is_due("0 6 * * *", None, end, end + dt.timedelta(hours=6))
    assert partitions.is_due("@daily", None, end, end)


def year_tags(first: str = "2023-01-02", last: str = "2023-12-31") -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


@pytest.mark.usefixtures("partitions_on")
def test_year_backfill_in_one_run_then_up_to_date(reference_project: Path) -> None:
    """A year of daily partitions and every unpartitioned model in one run and one SQLMesh
    execution; each partition recorded exactly as SQLMesh recorded its interval. The same range
    again fills nothing, so it records no partition (and Dagster skips what is downstream)."""
    instance = dg.DagsterInstance.ephemeral()
    run = materialize(reference_project, instance=instance, tags=year_tags())
    assert run.success
    assert sqlmesh_ran_once(reference_project)
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

    rerun = materialize(
        reference_project,
        instance=instance,
        tags=year_tags(),
        resource_config={"audit_unchanged": True},
    )
    assert rerun.success
    assert materializations_of(rerun, QUOTES) == []
    assert materializations_of(rerun, RETURNS) == []
    assert rerun.step_statuses()["marts__daily_returns"] == "STEP_SKIPPED"
    assert any(ALREADY_RECORDED in m for m in rerun.messages())
    # with audit_unchanged, checks of the models SQLMesh found filled ran on the year's
    # unchanged data (ADR 12)
    assert rerun.events("ASSET_CHECK_EVALUATION")
    for event in rerun.events("ASSET_CHECK_EVALUATION"):
        assert event.event_specific_data.metadata["sqlmesh/data_unchanged"].value is True
    assert recorded_days(reference_project, QUOTES_MODEL) == days
    assert materialized_partitions(instance, QUOTES) == days


def test_cli_partition_range_over_the_whole_flow(reference_project: Path, tmp_path: Path) -> None:
    """With partitions on, Dagster's CLI refuses `--select '*'` over partitioned assets without a
    partition; with `--partition-range` the mixed selection is one run (every asset has a
    single-run policy)."""
    home = dagster_home(tmp_path)
    env = environment(reference_project, home, MXM_SQLMESH_PARTITIONS="on")
    command = ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions", "--select", "*"]
    refused = run_cli(command, env)
    assert refused.returncode != 0
    assert "no '--partition' option was provided" in refused.stderr

    done = run_cli([*command, "--partition-range", "2023-01-02...2023-02-28"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    assert sqlmesh_ran_once(reference_project)
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 1
    assert executions_in_results_file(home, run.run_id) == 1
    days = recorded_days(reference_project, QUOTES_MODEL)
    assert min(days) == "2023-01-02" and max(days) == "2023-02-28" and len(days) == 58
    assert materialized_partitions(run.instance, QUOTES) == days
    assert run.materializations()["marts/fund_overview"]["sqlmesh/outcome"] == "evaluated"

    # the README's restatement command: three days recomputed, recorded again
    restate = '{"resources": {"sqlmesh": {"config": {"restate": true}}}}'
    quotes = ["--select", "staging/stg_daily_quotes"]
    three_days = ["--partition-range", "2023-01-10...2023-01-12", "--config-json", restate]
    done = run_cli([*MATERIALIZE_ALL, *quotes, *three_days], env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = materializations_of(runs(home)[-1], QUOTES)
    assert sorted(r.partition for r in records) == ["2023-01-10", "2023-01-11", "2023-01-12"]
    assert {r.metadata["sqlmesh/restated"].value for r in records} == {True}


@pytest.mark.usefixtures("partitions_on")
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

    # without restatement the same range is up to date: nothing recomputed, nothing recorded
    plain = {k: v for k, v in restate.items() if k != "mxm/restate"}
    again = materialize(reference_project, ["staging/stg_daily_quotes"], instance, plain)
    assert again.success
    assert materializations_of(again, QUOTES) == []
    assert any("already recorded by SQLMesh" in m for m in again.messages())


def _days_of(intervals: list[list[str]]) -> set[str]:
    days: set[str] = set()
    for start, end in intervals:
        day = dt.datetime.fromisoformat(start)
        while day < dt.datetime.fromisoformat(end):
            days.add(day.date().isoformat())
            day += dt.timedelta(days=1)
    return days


@pytest.mark.usefixtures("partitions_on")
def test_a_mart_selected_after_a_backfill_also_fills_what_is_due_upstream(
    reference_project: Path,
) -> None:
    """Selecting a downstream unpartitioned mart fills what its cron made due upstream of it, as
    `sqlmesh run --select-model` does (ADR 7); the upstream's new intervals get their partition
    records, so Dagster's partitions stay equal to SQLMesh's intervals."""
    instance = dg.DagsterInstance.ephemeral()
    q1 = year_tags("2023-01-02", "2023-03-31")
    selection = ["landing/etf_daily_quotes", "staging/stg_daily_quotes", "marts/daily_returns"]
    assert materialize(reference_project, selection, instance=instance, tags=q1).success
    filled = materialized_partitions(instance, QUOTES)

    result = materialize(reference_project, ["marts/monthly_returns"], instance=instance)
    assert result.success
    assert result.materializations()["marts/monthly_returns"]["sqlmesh/outcome"] == "evaluated"
    recorded = recorded_days(reference_project, QUOTES_MODEL)
    assert recorded > filled
    assert materialized_partitions(instance, QUOTES) == recorded


# ---------------------------------------------------------------- partitions are opt-in

MATERIALIZE_ALL = ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions"]


def partitioned_keys(project: Path, **options: bool) -> set[str]:
    defs = build_definitions(SQLMeshProject(path=project), **options)
    graph = defs.resolve_asset_graph()
    return {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}


def test_partitions_are_off_unless_turned_on(
    reference_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(partitions.PARTITIONS_ENV, raising=False)
    assert partitioned_keys(reference_project) == set()
    on = {"staging/stg_daily_quotes", "marts/daily_returns"}
    assert partitioned_keys(reference_project, partitions=True) == on
    monkeypatch.setenv(partitions.PARTITIONS_ENV, "on")
    assert partitioned_keys(reference_project) == on
    assert partitioned_keys(reference_project, partitions=False) == set()  # the option wins
    monkeypatch.setenv(partitions.PARTITIONS_ENV, "yes")
    with pytest.raises(ValueError, match="MXM_SQLMESH_PARTITIONS must be 'on' or 'off', not 'yes'"):
        build_definitions(SQLMeshProject(path=reference_project))


class ReturnsOnlyTranslator(SQLMeshTranslator):
    """Partitions for one model, whatever the project setting."""

    def get_partitions_def(self, model: ModelSpec) -> dg.PartitionsDefinition | None:
        return (
            partitions.partitions_def_from_model(model) if model.table == "daily_returns" else None
        )


def test_a_translator_decides_per_model(reference_project: Path) -> None:
    spec = SQLMeshProject(path=reference_project).load_spec()
    for time_partitions in (False, True):
        translator = ReturnsOnlyTranslator(spec, time_partitions=time_partitions)
        assets = build_sqlmesh_assets(spec, reference_project, translator)
        resources = {RESOURCE_KEY: SQLMeshResultsResource()}
        graph = dg.Definitions(assets=assets, resources=resources).resolve_asset_graph()
        partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}
        assert partitioned == {RETURNS}


def make_run_command() -> list[str]:
    """The Dagster command of the Makefile's `run` target, as `run_cli` takes it."""
    lines = (REPO / "Makefile").read_text().split("\nrun:", 1)[1].splitlines()[1:]
    recipe = next(line.strip() for line in lines if "dagster asset materialize" in line)
    return [arg.replace("$(BIN)/", "") for arg in shlex.split(recipe)]


def test_make_run_materializes_everything_unpartitioned(
    reference_project: Path, tmp_path: Path
) -> None:
    """`make run`'s command, exactly: partitions off, `--select '*'`, one run, every model."""
    command = make_run_command()
    assert command == [*MATERIALIZE_ALL, "--select", "*"]
    home = dagster_home(tmp_path)
    done = run_cli(command, environment(reference_project, home))
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    assert sqlmesh_ran_once(reference_project)
    assert sum(SQLMESH_STARTS in m for m in run.messages()) == 1
    mats = run.materializations()
    assert mats["marts/fund_overview"]["sqlmesh/outcome"] == "evaluated"
    assert mats["staging/stg_daily_quotes"]["sqlmesh/outcome"] == "evaluated"
    assert materialized_partitions(run.instance, QUOTES) == set()  # unpartitioned: no partitions
    assert recorded_days(reference_project, QUOTES_MODEL)


def test_cli_materializes_the_project_sqlmesh_init_creates(tmp_path: Path) -> None:
    """The project most SQLMesh users start from, created by the installed SQLMesh."""
    project = tmp_path / "init_project"
    project.mkdir()
    created = run_cli(["sqlmesh", "init", "duckdb"], {}, cwd=project, timeout=120)
    assert created.returncode == 0, created.stderr[-2000:]
    home = dagster_home(tmp_path)
    done = run_cli([*MATERIALIZE_ALL, "--select", "*"], environment(project, home))
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    mats = run.materializations()
    assert {k for k, m in mats.items() if m.get("sqlmesh/outcome") == "evaluated"} == {
        "sqlmesh_example/seed_model",
        "sqlmesh_example/incremental_model",
        "sqlmesh_example/full_model",
    }
    assert query(project / "db.db", "SELECT COUNT(*) FROM sqlmesh_example.full_model")[0][0] > 0


# ---------------------------------------------------------------- partitions say what SQLMesh did

DAILY = dg.AssetKey(["shop", "daily_orders"])
TOTALS = dg.AssetKey(["shop", "order_totals"])
DAILY_MODEL = '"warehouse"."shop"."daily_orders"'
FILES = {
    "config.yaml": DUCKDB_CONFIG,
    "models/stores.sql": """\
MODEL (name shop.stores, kind FULL, audits (not_null(columns := (store_id))));
SELECT 1 AS store_id
""",
    "models/daily_orders.sql": """\
MODEL (
  name shop.daily_orders,
  kind INCREMENTAL_BY_TIME_RANGE (time_column order_date),
  cron '0 6 * * *',
  start '2026-11-01',
  grain (store_id, order_date)
);
SELECT s.store_id, d.generate_series::DATE AS order_date, 10 AS orders
FROM generate_series(@start_date::TIMESTAMP, @end_date::TIMESTAMP, INTERVAL 1 DAY) AS d
CROSS JOIN shop.stores AS s
WHERE d.generate_series::DATE BETWEEN @start_date AND @end_date
""",
    "models/order_totals.sql": """\
MODEL (name shop.order_totals, kind FULL, audits (not_null(columns := (total))));
SELECT SUM(orders) AS total, COUNT(*) AS days FROM shop.daily_orders
""",
}


@pytest.fixture
def six_am_project(tmp_path: Path) -> Path:
    """A daily model whose cron ticks at 06:00: day D is due at D+1 06:00, not at midnight."""
    project = tmp_path / "shop"
    for name, text in FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return project


def days_tags(first: str, last: str) -> dict[str, str]:
    return year_tags(first, last)


@pytest.mark.usefixtures("partitions_on")
def test_a_partition_sqlmesh_did_not_fill_is_not_materialized(six_am_project: Path) -> None:
    """The range 11-25...11-28 of a `0 6 * * *` daily model: a prod range plans as of the range's
    end (11-29 00:00), when 11-28 is not due yet. SQLMesh fills up to 11-27; Dagster records
    exactly those partitions, no output for the range, and skips the downstream step, whose
    evaluation and audit the run still records."""
    instance = dg.DagsterInstance.ephemeral()
    selection = ["shop/daily_orders", "shop/order_totals"]  # shop.stores: upstream, not selected
    run = materialize(six_am_project, selection, instance, days_tags("2026-11-25", "2026-11-28"))
    assert run.success

    days = recorded_days(six_am_project, DAILY_MODEL)
    assert min(days) == "2026-11-01" and max(days) == "2026-11-27"
    assert materialized_partitions(instance, DAILY) == days
    assert "2026-11-28" not in materialized_partitions(instance, DAILY)
    assert all(m.partition for m in materializations_of(run, DAILY))
    messages = "\n".join(run.messages())
    assert "2026-11-28: not due by the model's cron '0 6 * * *'" in messages
    assert "SQLMesh filled 3 of the 4 partitions" in messages

    # Dagster skips the downstream step; what SQLMesh did for it is recorded all the same
    statuses = run.step_statuses()
    assert statuses["shop__daily_orders"] == "STEP_SUCCESS"
    assert statuses["shop__order_totals"] == "STEP_SKIPPED"
    assert "Dagster skips the steps downstream of shop/daily_orders" in messages
    mats = run.materializations()
    assert mats["shop/order_totals"]["sqlmesh/outcome"] == "evaluated"
    assert mats["shop/order_totals"]["sqlmesh/execution_id"]
    # the execution finalized: the unselected upstream SQLMesh evaluated has its record, and
    # the result of the audit SQLMesh ran on it
    assert mats["shop/stores"]["sqlmesh/selected"] is False
    assert run.checks() == {
        "shop/order_totals:not_null": (True, "ERROR"),
        "shop/stores:not_null": (True, "ERROR"),
    }
    total = query(six_am_project / "warehouse.duckdb", "SELECT total FROM shop.order_totals")
    assert total == [(270,)]


@pytest.mark.usefixtures("partitions_on")
def test_a_filled_range_again_records_no_partition(six_am_project: Path) -> None:
    """As of 11-30 00:00 every day up to 11-28 is due: the range 11-20...11-27 is filled whole
    (the range's output records it, 11-01...11-19 and 11-28 get their own records). The same
    range again fills nothing and records nothing; restated, it is filled and recorded again."""
    instance = dg.DagsterInstance.ephemeral()
    tags = {**days_tags("2026-11-20", "2026-11-27"), "mxm/execution_time": "2026-11-30 00:00:00"}
    first = materialize(six_am_project, ["shop/daily_orders"], instance, tags)
    assert first.success
    days = recorded_days(six_am_project, DAILY_MODEL)
    assert min(days) == "2026-11-01" and max(days) == "2026-11-28"
    assert materialized_partitions(instance, DAILY) == days
    assert first.step_statuses()["shop__daily_orders"] == "STEP_SUCCESS"
    assert not any("Not filled" in m for m in first.messages())

    again = materialize(six_am_project, ["shop/daily_orders"], instance, tags)
    assert again.success
    assert materializations_of(again, DAILY) == []
    assert any(ALREADY_RECORDED in m for m in again.messages())
    assert recorded_days(six_am_project, DAILY_MODEL) == days
    assert materialized_partitions(instance, DAILY) == days

    restated = materialize(
        six_am_project, ["shop/daily_orders"], instance, {**tags, "mxm/restate": "true"}
    )
    assert restated.success
    records = materializations_of(restated, DAILY)
    assert sorted(r.partition for r in records) == [f"2026-11-{d}" for d in range(20, 28)]
    assert {r.metadata["sqlmesh/restated"].value for r in records} == {True}


@pytest.mark.usefixtures("partitions_on")
def test_a_partial_range_under_the_multiprocess_executor(
    six_am_project: Path, tmp_path: Path
) -> None:
    """One process per step, through the CLI: the same partitions, and the skipped step's
    model recorded from the step upstream of it."""
    home = dagster_home(tmp_path)
    env = environment(six_am_project, home, MXM_DAGSTER_EXECUTOR="multiprocess")
    select = ["--select", "shop/daily_orders,shop/order_totals"]
    command = [*MATERIALIZE_ALL, *select, "--partition-range", "2026-11-25...2026-11-28"]
    done = run_cli(command, env)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    days = recorded_days(six_am_project, DAILY_MODEL)
    assert max(days) == "2026-11-27"
    assert materialized_partitions(run.instance, DAILY) == days
    assert run.step_statuses()["shop__order_totals"] == "STEP_SKIPPED"
    assert run.materializations()["shop/order_totals"]["sqlmesh/outcome"] == "evaluated"
    assert run.checks() == {  # shop.stores: an upstream SQLMesh evaluated beyond the selection
        "shop/order_totals:not_null": (True, "ERROR"),
        "shop/stores:not_null": (True, "ERROR"),
    }


def shop_with(tmp_path: Path, **replacements: str) -> Path:
    """The shop project with its daily model's MODEL block edited (`old=new` pairs)."""
    project = tmp_path / "shop_edited"
    for name, text in FILES.items():
        if name == "models/daily_orders.sql":
            for old, new in replacements.items():
                text = text.replace(old, new)
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return project


@pytest.mark.usefixtures("partitions_on")
def test_partitions_after_the_models_end_are_past_its_end(tmp_path: Path) -> None:
    """A model ending 11-20: the range 11-18...11-22 as of 11-30 has 11-21 and 11-22 after its
    end. SQLMesh fills up to the end; those two are neither filled nor materialized, and the
    log says why (it used to say SQLMesh gave no reason)."""
    project = shop_with(tmp_path, **{"cron '0 6 * * *',": "cron '@daily',\n  end '2026-11-20',"})
    instance = dg.DagsterInstance.ephemeral()
    tags = {**days_tags("2026-11-18", "2026-11-22"), "mxm/execution_time": "2026-11-30 00:00:00"}
    run = materialize(project, ["shop/daily_orders"], instance, tags)
    assert run.success, run.messages()

    days = recorded_days(project, DAILY_MODEL)
    assert min(days) == "2026-11-01" and max(days) == "2026-11-20"
    assert materialized_partitions(instance, DAILY) == days
    messages = "\n".join(run.messages())
    assert (
        "Not filled: 2026-11-21, 2026-11-22: past its end (ends at 2026-11-21T00:00:00+00:00)"
        in messages
    ), messages
    assert "SQLMesh filled 3 of the 5 partitions" in messages


@pytest.mark.usefixtures("partitions_on")
def test_due_ness_of_a_partition_follows_the_models_cron_tz(tmp_path: Path) -> None:
    """Cron `0 6 * * *` in Los Angeles ticks at 14:00 UTC: at 11-29 10:00 UTC day 11-28 is not
    due for SQLMesh, while a UTC reading of the cron (06:00) would call it due."""
    project = shop_with(
        tmp_path, **{"cron '0 6 * * *',": "cron '0 6 * * *',\n  cron_tz 'America/Los_Angeles',"}
    )
    instance = dg.DagsterInstance.ephemeral()
    tags = {**days_tags("2026-11-25", "2026-11-28"), "mxm/execution_time": "2026-11-29 10:00:00"}
    run = materialize(project, ["shop/daily_orders"], instance, tags)
    assert run.success, run.messages()

    days = recorded_days(project, DAILY_MODEL)
    assert max(days) == "2026-11-27"  # SQLMesh's reading of the cron in its time zone
    assert "2026-11-28" not in materialized_partitions(instance, DAILY)
    messages = "\n".join(run.messages())
    assert (
        "2026-11-28: not due by the model's cron '0 6 * * *' in America/Los_Angeles as of the "
        "execution time 2026-11-29T10:00:00+00:00"
    ) in messages, messages
