"""Why a partition of a step's range is not filled, as the step's note says it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus
from mxm_dagster.run.step_output import execution_time_of, partition_unfilled_reason
from tests.unit.specs_factory import model, ms

JAN_2 = datetime(2024, 1, 2, tzinfo=UTC)  # the end of the 2024-01-01 partition
NOON_JAN_2 = datetime(2024, 1, 2, 12, tzinfo=UTC)


def results(restated: bool = False, execution_time: int | None = None) -> ExecutionResults:
    return ExecutionResults(
        execution_id="e",
        environment="prod",
        models={},
        started_at=ms(2024, 1, 3) / 1000,
        finished_at=ms(2024, 1, 3) / 1000,
        restated=restated,
        execution_time=execution_time,
    )


def outcome(reason: str | None = None) -> ModelOutcome:
    status = ModelStatus.NOT_FILLED if reason else ModelStatus.UP_TO_DATE
    return ModelOutcome(model="m", status=status, reason=reason)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"execution_time": datetime(2024, 1, 1, 12, tzinfo=UTC)},
            "not complete as of the execution time 2024-01-01T12:00:00+00:00",
        ),
        (
            {"model": model(cron="0 18 * * *")},
            "not due by the model's cron '0 18 * * *' as of the execution time "
            "2024-01-02T12:00:00+00:00",
        ),
        ({"outcome": outcome("waiting on signal s")}, "waiting on signal s"),
        ({"results": results(restated=True)}, "due, but SQLMesh did not restate it in this run"),
        (
            {"materialized_before": True},
            "already recorded by SQLMesh (materialized in an earlier run), not restated",
        ),
    ],
)
def test_the_first_reason_that_holds_is_given(fields: dict, expected: str) -> None:
    arguments = {
        "outcome": outcome(),
        "results": results(),
        "interval_end": JAN_2,
        "model": model(cron="@daily"),
        "execution_time": NOON_JAN_2,
        "materialized_before": False,
        **fields,
    }
    assert partition_unfilled_reason(**arguments) == expected


def test_without_a_reason_sqlmesh_gave_none_is_said() -> None:
    reason = partition_unfilled_reason(outcome(), results(), JAN_2, model(), NOON_JAN_2, False)
    assert reason.startswith("not filled by SQLMesh in this run, which gave no reason")


def test_the_execution_time_is_the_childs_else_the_start() -> None:
    assert execution_time_of(results(execution_time=ms(2024, 1, 2, 12))) == NOON_JAN_2
    assert execution_time_of(results()) == datetime(2024, 1, 3, tzinfo=UTC)
