"""Why a partition of a step's range was not filled, from the model's spec and the outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus
from mxm_dagster.run.step_output import partition_unfilled_reason
from tests.unit.specs_factory import model, ms

AS_OF = datetime(2024, 1, 10, 10, tzinfo=UTC)  # 02:00 in Los Angeles
DAY_9_END = datetime(2024, 1, 10, tzinfo=UTC)
RESULTS = ExecutionResults("e", "prod", {}, 1.0, 2.0)


def reason(spec, outcome=None, interval_end=DAY_9_END, materialized=False) -> str:
    outcome = outcome or ModelOutcome(model=spec.name, status=ModelStatus.EVALUATED)
    return partition_unfilled_reason(outcome, RESULTS, interval_end, spec, AS_OF, materialized)


def test_a_partition_after_the_models_end_is_past_its_end_whatever_the_clock() -> None:
    ended = replace(model(), end="2024-01-05", end_ms=ms(2024, 1, 6))
    expected = "past its end (ends at 2024-01-06T00:00:00+00:00)"
    assert reason(ended).startswith(expected)
    assert reason(ended, interval_end=datetime(2024, 1, 12, tzinfo=UTC)).startswith(expected)
    # the last interval before the end is not past it
    assert not reason(ended, interval_end=datetime(2024, 1, 6, tzinfo=UTC)).startswith("past")


def test_due_ness_reads_the_cron_in_its_time_zone() -> None:
    six_am = replace(model(), cron="0 6 * * *")
    assert reason(six_am).startswith("not filled by SQLMesh in this run")  # due at 06:00 UTC
    in_los_angeles = replace(six_am, cron_tz="America/Los_Angeles")
    assert reason(in_los_angeles) == (
        "not due by the model's cron '0 6 * * *' in America/Los_Angeles as of the execution "
        "time 2024-01-10T10:00:00+00:00"
    )


def test_the_note_of_an_ended_model_is_not_a_reason_for_earlier_partitions() -> None:
    ended = replace(model(), end_ms=ms(2024, 1, 6))
    up_to_date = ModelOutcome(ended.name, ModelStatus.UP_TO_DATE, reason="ended at ...")
    early = datetime(2024, 1, 3, tzinfo=UTC)
    assert reason(ended, up_to_date, early, materialized=True) == (
        "already recorded by SQLMesh (materialized in an earlier run), not restated"
    )
    stalled = ModelOutcome(ended.name, ModelStatus.NOT_FILLED, reason="waiting on signal s")
    assert reason(ended, stalled, early) == "waiting on signal s"
