"""Every execution fills what each model's cron made due as of its execution time, and a model
SQLMesh did not bring up to date is never reported `up_to_date` (issue 11, measurement 4).

What is due and what is filled is read from SQLMesh's own state (recorded intervals), never from
the metadata under test. Every run is pinned to an execution time on a fixed day (TODAY) and every
model has a start, so no result depends on the wall clock's date or hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mxm_dagster.child.project import opened_context
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.results import ExecutionResults, ModelStatus, RunResults
from tests.conftest import RunOutcome, grow_numbers, materialize, query
from tests.support.sqlmesh_state import recorded_intervals

TODAY = date(2026, 11, 30)  # SQLMesh's "today" in every run here (tag mxm/execution_time)
DAILY = '"warehouse"."staging"."daily_rates"'
GATED = '"warehouse"."staging"."gated"'
AFTER_GATED = '"warehouse"."marts"."after_gated"'
ENDED = '"warehouse"."staging"."ended"'
AFTER_ENDED = '"warehouse"."marts"."after_ended"'


def days_ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def epoch_ms(day: date, hour: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp() * 1000)


def as_tag(day: date, hour: int) -> dict[str, str]:
    return {"mxm/execution_time": f"{day.isoformat()} {hour:02d}:00:00"}


@pytest.fixture
def clean_project(clean_project: Path) -> Path:
    """The clean fixture with a start for every model (`model_defaults`): SQLMesh's default is
    yesterday by the wall clock, which the runs pinned to TODAY would precede ("Start date /
    time ... can't be greater than end date / time")."""
    config = clean_project / "config.yaml"
    start = "model_defaults:\n  start: '2026-11-01'\n"
    config.write_text(config.read_text().replace("model_defaults:\n", start, 1))
    return clean_project


def add_daily_model(project: Path, cron: str = "@daily", extra: str = "") -> None:
    """A daily time-incremental model that reads no other model of the project."""
    (project / "models" / "daily_rates.sql").write_text(
        "MODEL (\n  name staging.daily_rates,\n  kind INCREMENTAL_BY_TIME_RANGE (time_column ds),\n"
        f"  start '{days_ago(6).isoformat()}',\n  cron '{cron}'{extra}\n);\n"
        "SELECT @start_ds::DATE AS ds, 1.5 AS rate\n"
    )


def intervals_of(project: Path, model: str) -> list[tuple[int, int]]:
    with opened_context(SQLMeshProject(path=project), load=False) as context:
        return recorded_intervals(context, "prod").get(model, [])


def filled_until(project: Path, model: str) -> int | None:
    """The end of the last interval SQLMesh recorded for `model`, if any."""
    return max((end for _, end in intervals_of(project, model)), default=None)


def stored_results(run: RunOutcome) -> ExecutionResults:
    """The run's SQLMesh execution as the child reported it (also for steps Dagster skipped)."""
    runs = Path(run.instance.storage_directory()) / "mxm_dagster" / "runs"
    (path,) = runs.glob(f"{run.run_id}-*.json")  # one project, one results file
    (execution,) = RunResults.read(path).executions
    return execution


def forget_serving_marker(project: Path) -> None:
    """Make the next execution plan, as if another tool had deployed the project."""
    for marker in (project / ".cache" / "mxm_dagster").glob("*-serving.json"):
        marker.unlink()


def test_a_plan_after_an_edit_elsewhere_fills_the_intervals_due_since_the_last_run(
    clean_project: Path,
) -> None:
    """Measured on 0.236: a plan without `run` is capped at the environment's latest interval
    end, so after an edit the daily model stayed behind and was reported `up_to_date`."""
    add_daily_model(clean_project)
    past = materialize(clean_project, tags=as_tag(days_ago(3), 12))
    assert past.success, past.messages()
    assert filled_until(clean_project, DAILY) == epoch_ms(days_ago(3))

    grow_numbers(clean_project)  # another model's file changes: the next execution plans
    result = materialize(clean_project, tags=as_tag(TODAY, 12))
    assert result.success, result.messages()
    mats = result.materializations()
    assert mats["raw/numbers"]["sqlmesh/command"] == "plan"
    # SQLMesh's state: every day due by @daily up to today 00:00 is filled, in this same run
    assert intervals_of(clean_project, DAILY) == [(epoch_ms(days_ago(6)), epoch_ms(TODAY))]
    assert mats["staging/daily_rates"]["sqlmesh/outcome"] == "evaluated"
    assert mats["staging/daily_rates"]["sqlmesh/data_changed"] is True
    assert mats["staging/daily_rates"]["sqlmesh/intervals"][-1][1].startswith(TODAY.isoformat())

    # nothing is due any more: up to date, no data changed
    again = materialize(clean_project, tags=as_tag(TODAY, 13))
    assert again.success
    mats = again.materializations()
    assert mats["staging/daily_rates"]["sqlmesh/outcome"] == "up_to_date"
    assert {m["sqlmesh/data_changed"] for m in mats.values()} == {False}


@pytest.mark.parametrize("command", ["run", "plan"])
def test_run_and_plan_fill_only_what_the_cron_made_due(command: str, clean_project: Path) -> None:
    """`0 6 * * *` at 03:00: yesterday's interval is not due before 06:00. Both paths agree (the
    run path used to ignore cron and fill it); a model with nothing due is up to date."""
    add_daily_model(clean_project, cron="0 6 * * *")
    assert materialize(clean_project, tags=as_tag(days_ago(3), 12)).success
    assert filled_until(clean_project, DAILY) == epoch_ms(days_ago(3))
    if command == "plan":
        forget_serving_marker(clean_project)

    result = materialize(clean_project, tags=as_tag(TODAY, 3))
    assert result.success, result.messages()
    mats = result.materializations()
    assert mats["staging/daily_rates"]["sqlmesh/command"] == command
    assert mats["staging/daily_rates"]["sqlmesh/outcome"] == "evaluated"
    assert filled_until(clean_project, DAILY) == epoch_ms(days_ago(1))

    not_due_yet = materialize(clean_project, tags=as_tag(TODAY, 5))
    assert not_due_yet.success
    daily = not_due_yet.materializations()["staging/daily_rates"]
    assert daily["sqlmesh/outcome"] == "up_to_date"
    assert daily["sqlmesh/data_changed"] is False
    assert filled_until(clean_project, DAILY) == epoch_ms(days_ago(1))


def add_gated_models(project: Path) -> None:
    """A model behind a SQLMesh signal that never reports ready, and a model reading it."""
    (project / "signals").mkdir()
    (project / "signals" / "readiness.py").write_text(
        "from sqlmesh import signal\n\n\n@signal()\ndef never_ready(batch):\n    return False\n"
    )
    (project / "models" / "gated.sql").write_text(
        "MODEL (\n  name staging.gated,\n  kind INCREMENTAL_BY_TIME_RANGE (time_column ds),\n"
        f"  start '{days_ago(3).isoformat()}',\n  cron '@daily',\n  signals (never_ready())\n);\n"
        "SELECT @start_ds::DATE AS ds, 1 AS v\n"
    )
    (project / "models" / "after_gated.sql").write_text(  # starts with what it reads
        f"MODEL (name marts.after_gated, kind FULL, start '{days_ago(3).isoformat()}');\n"
        "SELECT count(*) AS n FROM staging.gated\n"
    )


def test_a_model_waiting_on_a_signal_is_not_filled_and_says_so(clean_project: Path) -> None:
    add_gated_models(clean_project)
    result = materialize(clean_project, tags=as_tag(TODAY, 12))
    assert result.success, result.messages()
    assert intervals_of(clean_project, GATED) == []  # SQLMesh filled nothing: the signal said no

    statuses = result.step_statuses()
    assert statuses["staging__gated"] == "STEP_SUCCESS"
    assert statuses.get("marts__after_gated") != "STEP_SUCCESS"  # Dagster skips what reads it
    mats = result.materializations()
    assert "staging/gated" not in mats and "marts/after_gated" not in mats
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    logged = [m for m in result.messages() if m.startswith(f"SQLMesh did not fill {GATED}")]
    assert len(logged) == 1 and "waiting on signal never_ready" in logged[0], logged

    outcomes = stored_results(result).models
    assert outcomes[GATED].status is ModelStatus.NOT_FILLED
    assert "3 due intervals" in (outcomes[GATED].reason or "")
    assert outcomes[AFTER_GATED].status is ModelStatus.NOT_FILLED
    assert f"waiting on upstream {GATED}" in (outcomes[AFTER_GATED].reason or "")


def test_a_model_past_its_end_is_complete_once_its_intervals_are_done(
    clean_project: Path,
) -> None:
    """Every interval up to the end recorded, nothing is due any more: the model is up to date
    and says it ended, and the model reading it runs (its step used to be skipped on every run
    once the ended model was reported `not_filled`)."""
    (clean_project / "models" / "ended.sql").write_text(
        "MODEL (\n  name staging.ended,\n  kind INCREMENTAL_BY_TIME_RANGE (time_column ds),\n"
        f"  start '{days_ago(6).isoformat()}',\n  end '{days_ago(4).isoformat()}',\n"
        "  cron '@daily'\n);\nSELECT @start_ds::DATE AS ds, 1 AS v\n"
    )
    (clean_project / "models" / "after_ended.sql").write_text(
        "MODEL (name marts.after_ended, kind FULL);\nSELECT count(*) AS n FROM staging.ended\n"
    )
    first = materialize(clean_project, tags=as_tag(TODAY, 12))
    assert first.success, first.messages()
    assert first.materializations()["staging/ended"]["sqlmesh/outcome"] == "evaluated"
    # SQLMesh fills up to the model's end (a date, so inclusive) and nothing after it
    assert intervals_of(clean_project, ENDED) == [(epoch_ms(days_ago(6)), epoch_ms(days_ago(3)))]

    second = materialize(clean_project, tags=as_tag(TODAY, 13))
    assert second.success, second.messages()
    statuses = second.step_statuses()
    assert statuses["staging__ended"] == "STEP_SUCCESS"
    assert statuses["marts__after_ended"] == "STEP_SUCCESS"  # not skipped
    mats = second.materializations()
    ended = mats["staging/ended"]
    assert ended["sqlmesh/outcome"] == "up_to_date"
    assert ended["sqlmesh/data_changed"] is False
    assert ended["sqlmesh/reason"].startswith(
        f"ended at {days_ago(3).isoformat()}T00:00:00+00:00: SQLMesh fills no interval after"
    )
    assert mats["marts/after_ended"]["sqlmesh/outcome"] == "up_to_date"
    assert not any(m.startswith(f"SQLMesh did not fill {ENDED}") for m in second.messages())
    outcomes = stored_results(second).models
    assert outcomes[ENDED].status is ModelStatus.UP_TO_DATE
    assert outcomes[AFTER_ENDED].status is ModelStatus.UP_TO_DATE
    assert intervals_of(clean_project, ENDED) == [(epoch_ms(days_ago(6)), epoch_ms(days_ago(3)))]


def test_a_restatement_also_fills_what_became_due_since_the_last_run(
    clean_project: Path,
) -> None:
    """Restating plans without `run` (SQLMesh 0.236 with `run` clears a restated model without
    `start` and refills nothing); a run right after fills what the cron made due since."""
    add_daily_model(clean_project)
    assert materialize(clean_project, tags=as_tag(days_ago(3), 12)).success
    numbers = intervals_of(clean_project, '"warehouse"."raw"."numbers"')

    result = materialize(
        clean_project,
        selection=["staging/daily_rates", "raw/numbers"],
        tags={"mxm/restate": "1", **as_tag(TODAY, 12)},
    )
    assert result.success, result.messages()
    mats = result.materializations()
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    assert mats["staging/daily_rates"]["sqlmesh/outcome"] == "evaluated"
    assert mats["staging/daily_rates"]["sqlmesh/restated"] is True
    assert intervals_of(clean_project, DAILY) == [(epoch_ms(days_ago(6)), epoch_ms(TODAY))]
    assert intervals_of(clean_project, '"warehouse"."raw"."numbers"')[-1][1] >= numbers[-1][1]


def test_a_development_plan_leaves_the_tables_it_shares_with_prod_as_prod_left_them(
    clean_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dev plan evaluates what changed in dev (new tables), as `sqlmesh plan dev` does. An
    unchanged model shares prod's table: filling what its cron made due from dev wrote into
    prod's data before prod ran (the code location named every model for backfill; the
    conformance scenario retail_dev_while_due found it on a FULL model)."""
    add_daily_model(clean_project)
    assert materialize(clean_project, tags=as_tag(days_ago(3), 12)).success
    database = clean_project / "warehouse.duckdb"
    prod_rows = query(database, "SELECT * FROM staging.daily_rates ORDER BY ds")
    prod_intervals = intervals_of(clean_project, DAILY)
    assert prod_intervals == [(epoch_ms(days_ago(6)), epoch_ms(days_ago(3)))]
    monkeypatch.setenv("MXM_SQLMESH_ENVIRONMENT", "dev")
    grow_numbers(clean_project)  # a change of another model, as dev environments are made for

    result = materialize(clean_project, tags=as_tag(TODAY, 12))
    assert result.success, result.messages()
    mats = result.materializations()
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    assert mats["raw/numbers"]["dagster/row_count"] == 20  # the change, in dev
    # the unchanged daily model: prod's version, prod's intervals, prod's rows; not reported
    # as materialized (its due days are prod's to fill)
    assert "staging/daily_rates" not in mats
    assert intervals_of(clean_project, DAILY) == prod_intervals
    assert query(database, "SELECT * FROM staging.daily_rates ORDER BY ds") == prod_rows
    assert query(database, "SELECT count(*) FROM raw.numbers") == [(10,)]
