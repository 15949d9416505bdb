"""Restating a model restates the models below it, as `sqlmesh plan --restate-model` does.

A daily model over a landed source, a weekly model below it, a FULL model below that. Built once
as of a fixed execution time, the source then gets a late correction for one past day, and a
Dagster run restates the daily model alone. A twin copy driven identically by raw SQLMesh
(`Context.plan(restate_models=[daily])`) is the yardstick: the environment's views hold the same
rows and SQLMesh recorded the same intervals, and Dagster recorded a restated materialization of
each of the three models in that run. Real SQLMesh, DuckDB and Dagster runs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from sqlmesh import Context
from sqlmesh.utils.errors import PlanError

from mxm_dagster.asset_graph import partitions
from mxm_dagster.child.project import opened_context
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import DUCKDB_CONFIG, RunOutcome, materialize, query
from tests.support.sqlmesh_state import recorded_intervals

BUILT_AS_OF = "2026-11-25 00:00:00"  # a Wednesday: weeks of 11-01, 11-08 and 11-15 complete
CORRECTED_DAY = "2026-11-10"  # in the week of Sunday 11-08
DAILY, WEEKLY, TOTAL = (
    '"warehouse"."shop"."daily"',
    '"warehouse"."shop"."weekly"',
    ('"warehouse"."marts"."total"'),
)
KEYS = {DAILY: "shop/daily", WEEKLY: "shop/weekly", TOTAL: "marts/total"}
VIEWS = ("shop.daily", "shop.weekly", "marts.total")

MODELS = {
    "daily.sql": """\
MODEL (
  name shop.daily,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day),
  start '2026-11-01',
  cron '@daily',
  audits (not_null(columns := (amount)))
);
SELECT day::DATE AS day, SUM(amount)::DOUBLE AS amount, COUNT(*)::INT AS sales
FROM landing.sales
WHERE day BETWEEN @start_date AND @end_date
GROUP BY day
""",
    "weekly.sql": """\
MODEL (
  name shop.weekly,
  kind INCREMENTAL_BY_TIME_RANGE (time_column week_start),
  start '2026-11-01',
  cron '@weekly',
  audits (not_null(columns := (amount)))
);
-- weeks start on Sunday, as the intervals of an @weekly cron do
SELECT (day - dayofweek(day)::INT)::DATE AS week_start, SUM(amount)::DOUBLE AS amount,
  SUM(sales)::INT AS sales
FROM shop.daily
WHERE day BETWEEN @start_date AND @end_date
GROUP BY 1
""",
    "total.sql": """\
MODEL (
  name marts.total,
  kind FULL,
  cron '@daily',
  audits (not_null(columns := (amount)))
);
SELECT SUM(amount)::DOUBLE AS amount, MAX(week_start) AS last_week, COUNT(*)::INT AS weeks
FROM shop.weekly
""",
}
EXTERNAL_MODELS = """\
- name: '"warehouse"."landing"."sales"'
  columns:
    day: DATE
    amount: DOUBLE
"""


#: A blocking audit of the FULL model that the correction breaks (its total passes 1000)
TOTAL_CAPPED = "not_null(columns := (amount)), accepted_range(column := amount, max_v := 1000)"


def write_project(root: Path, total_audits: str | None = None) -> Path:
    """The project and its landed source: one sale a day, amount = day of month."""
    (root / "models").mkdir(parents=True)
    (root / "config.yaml").write_text(DUCKDB_CONFIG)
    (root / "external_models.yaml").write_text(EXTERNAL_MODELS)
    for name, text in MODELS.items():
        if name == "total.sql" and total_audits:
            text = text.replace("not_null(columns := (amount))", total_audits)
        (root / "models" / name).write_text(text)
    with duckdb.connect(str(root / "warehouse.duckdb")) as connection:
        connection.execute("CREATE SCHEMA landing")
        connection.execute(
            "CREATE TABLE landing.sales AS SELECT d::DATE AS day, day(d)::DOUBLE AS amount "
            "FROM range(DATE '2026-10-01', DATE '2026-12-31', INTERVAL 1 DAY) t(d)"
        )
    return root


def correct_source(project: Path, day: str = CORRECTED_DAY) -> None:
    """A late correction of one past day: its amount grows by 1000, and a second sale arrives."""
    with duckdb.connect(str(project / "warehouse.duckdb")) as connection:
        connection.execute(f"UPDATE landing.sales SET amount = amount + 1000 WHERE day = '{day}'")
        connection.execute(f"INSERT INTO landing.sales VALUES ('{day}', 1)")


def raw_plan(project: Path, **options: Any) -> None:
    """What a user of SQLMesh types in the project folder (the warehouse path is relative to
    it): `sqlmesh plan [--restate-model ...] --auto-apply`."""
    with contextlib.chdir(project):
        context = Context(paths=str(project), gateway="local")
        try:
            context.plan("prod", auto_apply=True, no_prompts=True, skip_tests=True, **options)
        finally:
            context.close()


def view_rows(project: Path) -> dict[str, list[tuple]]:
    """Every row of each environment view, in a stable order: contents, not counts."""
    database = project / "warehouse.duckdb"
    return {view: sorted(query(database, f"SELECT * FROM {view}")) for view in VIEWS}


def intervals(project: Path) -> dict[str, list[tuple[int, int]]]:
    with opened_context(SQLMeshProject(path=project)) as context:
        return {
            name: spans
            for name, spans in recorded_intervals(context, "prod").items()
            if name in KEYS
        }


def materializations(run: RunOutcome) -> dict[str, list[dg.AssetMaterialization]]:
    found: dict[str, list[dg.AssetMaterialization]] = {}
    for event in run.events("ASSET_MATERIALIZATION"):
        mat = event.event_specific_data.materialization
        found.setdefault(mat.asset_key.to_user_string(), []).append(mat)
    return found


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    """The project twice: one for Dagster, one for raw SQLMesh, both built as of BUILT_AS_OF."""
    dagster_copy = write_project(tmp_path / "dagster")
    raw_copy = write_project(tmp_path / "raw")
    return dagster_copy, raw_copy


def build(dagster_copy: Path, raw_copy: Path, instance: dg.DagsterInstance) -> None:
    built = materialize(
        dagster_copy, instance=instance, resource_config={"execution_time": BUILT_AS_OF}
    )
    assert built.success
    raw_plan(raw_copy, execution_time=BUILT_AS_OF, run=True)
    assert view_rows(dagster_copy) == view_rows(raw_copy)
    assert intervals(dagster_copy) == intervals(raw_copy)


def test_restating_a_model_restates_what_is_below_it_as_sqlmesh_does(
    twins: tuple[Path, Path],
) -> None:
    dagster_copy, raw_copy = twins
    instance = dg.DagsterInstance.ephemeral()
    build(dagster_copy, raw_copy, instance)
    before = view_rows(dagster_copy)
    for project in twins:
        correct_source(project)

    raw_plan(raw_copy, restate_models=[DAILY], execution_time=BUILT_AS_OF)
    run = materialize(
        dagster_copy,
        selection=[KEYS[DAILY]],
        instance=instance,
        resource_config={"restate": True, "execution_time": BUILT_AS_OF},
    )
    assert run.success

    after = view_rows(raw_copy)
    # the yardstick moved: SQLMesh recomputed the week of the correction and the total
    assert after["shop.weekly"] != before["shop.weekly"]
    assert after["marts.total"] != before["marts.total"]
    assert view_rows(dagster_copy) == after
    assert intervals(dagster_copy) == intervals(raw_copy)

    recorded = materializations(run)
    assert set(recorded) == set(KEYS.values())
    for key in KEYS.values():
        (mat,) = recorded[key]
        assert mat.metadata["sqlmesh/restated"].value is True, key
        assert mat.metadata["sqlmesh/outcome"].value == "evaluated", key
    assert recorded["shop/daily"][0].metadata["sqlmesh/selected"].value is True
    for below in ("shop/weekly", "marts/total"):
        assert recorded[below][0].metadata["sqlmesh/selected"].value is False
    # the audits SQLMesh ran on the recomputed data below are recorded as check evaluations
    checks = run.checks()
    for key in KEYS.values():
        assert checks[f"{key}:not_null"] == (True, "ERROR"), key
    assert any("also restates the models below it" in m for m in run.messages())

    # and the models below are now really up to date: materializing them again changes nothing
    again = materialize(
        dagster_copy,
        selection=[KEYS[WEEKLY], KEYS[TOTAL]],
        instance=instance,
        resource_config={"execution_time": BUILT_AS_OF},
    )
    assert again.success
    assert view_rows(dagster_copy) == after


def test_a_restated_partition_range_restates_that_range_below(
    twins: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With partitions on, a run over a range of the daily model with restate restates that
    range in the daily model and below it, as raw SQLMesh does with the same start and end: the
    same days of the weekly model (SQLMesh 0.236 gives an @weekly model day intervals, due once
    a week: the restatement is not widened to whole weeks) and the FULL model. Dagster records
    only what SQLMesh recomputed: the partitions of the range in both partitioned models, one
    materialization of the FULL model. The range is the correction's whole week, so the weekly
    row changes (a range of part of a week re-evaluates those days, but SQLMesh keeps only rows
    whose `week_start` lies in them)."""
    dagster_copy, raw_copy = twins
    instance = dg.DagsterInstance.ephemeral()
    # built with partitions off (one run of models whose partitions differ, daily and weekly),
    # then turned on: partition records exist for what a run with them on fills (ADR 5)
    build(dagster_copy, raw_copy, instance)
    before = view_rows(dagster_copy)
    monkeypatch.setenv(partitions.PARTITIONS_ENV, "on")
    for project in twins:
        correct_source(project)

    first, last = "2026-11-08", "2026-11-14"  # the week (Sunday to Saturday) of the correction
    days = [f"2026-11-{day:02d}" for day in range(8, 15)]
    raw_plan(
        raw_copy,
        restate_models=[DAILY],
        start=first,
        end=last,  # SQLMesh's end date is inclusive
        execution_time=BUILT_AS_OF,
    )
    run = materialize(
        dagster_copy,
        selection=[KEYS[DAILY]],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        resource_config={"restate": True, "execution_time": BUILT_AS_OF},
    )
    assert run.success
    after = view_rows(raw_copy)
    assert after["shop.weekly"] != before["shop.weekly"]
    assert after["marts.total"] != before["marts.total"]
    assert view_rows(dagster_copy) == after
    assert intervals(dagster_copy) == intervals(raw_copy)

    recorded = materializations(run)
    assert set(recorded) == set(KEYS.values())
    daily = sorted(m.partition for m in recorded["shop/daily"] if m.partition)
    assert daily == days
    # SQLMesh 0.236 gives an @weekly model day intervals (its interval unit), due weekly: it
    # restated the same days below, and its partitions are days
    weekly = sorted(m.partition for m in recorded["shop/weekly"])
    assert weekly == days
    intervals_of = {
        key: mats[0].metadata["sqlmesh/intervals"].value for key, mats in recorded.items()
    }
    assert intervals_of["shop/weekly"] == [
        ["2026-11-08T00:00:00+00:00", "2026-11-15T00:00:00+00:00"]
    ]
    assert [m.partition for m in recorded["marts/total"]] == [None]
    for key, mats in recorded.items():
        assert {m.metadata["sqlmesh/restated"].value for m in mats} == {True}, key


def test_a_model_below_that_fails_its_restatement_is_isolated(tmp_path: Path) -> None:
    """The FULL model's blocking audit fails on the corrected data: SQLMesh's plan fails, the
    code location promotes what succeeded without it (ADR 4). The daily and weekly models are
    restated and recorded, the FULL model's failed check is recorded and the run's log names
    it; the warehouse and SQLMesh's state end as raw SQLMesh leaves them after its failed plan."""
    dagster_copy = write_project(tmp_path / "dagster", TOTAL_CAPPED)
    raw_copy = write_project(tmp_path / "raw", TOTAL_CAPPED)
    instance = dg.DagsterInstance.ephemeral()
    build(dagster_copy, raw_copy, instance)
    before = view_rows(dagster_copy)
    for project in (dagster_copy, raw_copy):
        correct_source(project)

    with pytest.raises(PlanError):
        raw_plan(raw_copy, restate_models=[DAILY], execution_time=BUILT_AS_OF)
    run = materialize(
        dagster_copy,
        selection=[KEYS[DAILY]],
        instance=instance,
        resource_config={"restate": True, "execution_time": BUILT_AS_OF},
    )
    assert run.success  # the selected model succeeded; no step of the run is the FULL model's

    after = view_rows(raw_copy)
    assert after["shop.weekly"] != before["shop.weekly"]
    assert view_rows(dagster_copy) == after
    assert intervals(dagster_copy) == intervals(raw_copy)
    recorded = materializations(run)
    assert set(recorded) == {KEYS[DAILY], KEYS[WEEKLY]}
    for key in (KEYS[DAILY], KEYS[WEEKLY]):
        assert recorded[key][0].metadata["sqlmesh/restated"].value is True
    assert run.checks()[f"{KEYS[TOTAL]}:accepted_range"] == (False, "ERROR")
    assert any(
        m.startswith(f"SQLMesh model {TOTAL} (marts/total), which this run did not select, failed")
        for m in run.messages()
    )


def test_an_edit_made_before_a_restatement_is_still_deployed_after_it(tmp_path: Path) -> None:
    """A restating plan works from SQLMesh's state and ignores local edits (as `sqlmesh plan
    --restate-model` does). Restating the daily model now plans every model of the project; the
    run after it must still plan the edit, not take the environment for one serving the files."""
    project = write_project(tmp_path / "dagster")
    instance = dg.DagsterInstance.ephemeral()
    as_of = {"execution_time": BUILT_AS_OF}
    assert materialize(project, instance=instance, resource_config=as_of).success
    total = project / "models" / "total.sql"
    total.write_text(total.read_text().replace("COUNT(*)::INT AS weeks", "COUNT(*)::INT AS n"))

    restated = materialize(
        project, [KEYS[DAILY]], instance=instance, resource_config={"restate": True, **as_of}
    )
    assert restated.success
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'total'"
    assert ("weeks",) in query(project / "warehouse.duckdb", columns)  # the edit is not deployed

    after = materialize(project, [KEYS[TOTAL]], instance=instance, resource_config=as_of)
    assert after.success
    assert after.materializations()[KEYS[TOTAL]]["sqlmesh/command"] == "plan"
    view_columns = f"{columns} AND table_schema = 'marts'"
    assert query(project / "warehouse.duckdb", view_columns) == [
        ("amount",),
        ("last_week",),
        ("n",),
    ]
