"""The planner's status of a model and why SQLMesh left due intervals missing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mxm_dagster.child.plan.outcomes import _status, ended_note, unfilled_reason
from mxm_dagster.child.recorder import ModelRecord
from mxm_dagster.child.sqlmesh_api import DueIntervals
from mxm_dagster.records.results import ModelStatus
from tests.unit.specs_factory import model, ms

DAY_1 = (ms(2024, 1, 1), ms(2024, 1, 2))
DAY_2 = (ms(2024, 1, 2), ms(2024, 1, 3))


@pytest.mark.parametrize(
    ("record", "excluded", "expected"),
    [
        (ModelRecord(error="boom", evaluated_batches=1), False, ModelStatus.FAILED),
        (ModelRecord(error="boom"), True, ModelStatus.FAILED),
        (ModelRecord(), True, ModelStatus.SKIPPED),
        (None, True, ModelStatus.SKIPPED),
        (ModelRecord(evaluated_batches=1, audited_batches=1), False, ModelStatus.EVALUATED),
        (ModelRecord(audited_batches=2), False, ModelStatus.AUDITED),
        (ModelRecord(), False, ModelStatus.UP_TO_DATE),
        (None, False, ModelStatus.UP_TO_DATE),
    ],
)
def test_status_follows_what_sqlmesh_did_with_the_model(
    record: ModelRecord | None, excluded: bool, expected: ModelStatus
) -> None:
    assert _status(record, excluded) is expected


def due(
    missing: tuple[tuple[int, int], ...] = (),
    due_until: int = DAY_2[1],
    end: int | None = None,
    signals: tuple[str, ...] = (),
    parents: tuple[str, ...] = (),
) -> DueIntervals:
    return DueIntervals(missing, due_until, end, signals, parents)


def test_a_model_missing_nothing_due_has_no_reason() -> None:
    assert unfilled_reason("m", {"m": due()}, "prod") is None


def test_a_model_the_environment_lacks_says_so() -> None:
    assert unfilled_reason("m", {}, "dev") == (
        "SQLMesh's environment 'dev' holds no version of this model"
    )


def test_a_model_waiting_on_a_signal_names_it_and_the_missing_span() -> None:
    state = {"m": due(missing=(DAY_1, DAY_2), signals=("files_landed",))}
    assert unfilled_reason("m", state, "prod") == (
        "waiting on signal files_landed: it did not report 2 due intervals "
        "[2024-01-01T00:00:00+00:00, 2024-01-03T00:00:00+00:00) ready"
    )


def test_a_model_waiting_on_an_unfilled_upstream_names_only_that_upstream() -> None:
    state = {
        "m": due(missing=(DAY_2,), parents=("up", "full", "other")),
        "up": due(missing=(DAY_2,)),
        "full": due(),
    }
    assert unfilled_reason("m", state, "prod") == (
        "waiting on upstream up, which SQLMesh has not filled for the same intervals"
    )


def test_a_model_missing_intervals_for_no_known_cause_says_so() -> None:
    assert unfilled_reason("m", {"m": due(missing=(DAY_1,))}, "prod") == (
        "SQLMesh left 1 due interval [2024-01-01T00:00:00+00:00, 2024-01-02T00:00:00+00:00) "
        "unfilled without an error"
    )


def test_a_model_past_its_end_with_every_interval_recorded_misses_nothing() -> None:
    """Nothing after the end is ever filled, so nothing there is due: no reason, no not_filled
    (which would skip its downstream steps on every run)."""
    state = {"m": due(end=DAY_1[1], due_until=DAY_2[1])}
    assert unfilled_reason("m", state, "prod") is None


def test_a_model_past_its_end_still_missing_intervals_before_it_says_both() -> None:
    state = {"m": due(missing=(DAY_1,), end=DAY_1[1], due_until=DAY_2[1])}
    assert unfilled_reason("m", state, "prod") == (
        "SQLMesh left 1 due interval [2024-01-01T00:00:00+00:00, 2024-01-02T00:00:00+00:00) "
        "unfilled without an error; past its end: the model ends at 2024-01-02T00:00:00+00:00, "
        "and SQLMesh fills no interval after it (its cron made intervals due up to "
        "2024-01-03T00:00:00+00:00)"
    )


def test_an_up_to_date_model_past_its_end_says_it_ended() -> None:
    ended = replace(model(), end="2024-01-01", end_ms=DAY_1[1])
    assert ended_note(ended, ModelStatus.UP_TO_DATE, DAY_2[1]) == (
        "ended at 2024-01-02T00:00:00+00:00: SQLMesh fills no interval after the model's end, "
        "and none due before it is missing"
    )
    assert ended_note(ended, ModelStatus.UP_TO_DATE, DAY_1[1]) is not None  # ends right now


@pytest.mark.parametrize(
    ("end_ms", "status", "as_of"),
    [
        (None, ModelStatus.UP_TO_DATE, DAY_2[1]),  # no end
        (DAY_2[1], ModelStatus.UP_TO_DATE, DAY_1[1]),  # ends later
        (DAY_1[1], ModelStatus.EVALUATED, DAY_2[1]),  # filled its last intervals: no note
        (DAY_1[1], ModelStatus.NOT_FILLED, DAY_2[1]),  # has its own reason
    ],
)
def test_no_ended_note_unless_up_to_date_past_the_end(
    end_ms: int | None, status: ModelStatus, as_of: int
) -> None:
    assert ended_note(replace(model(), end_ms=end_ms), status, as_of) is None


def test_a_model_ending_where_its_due_intervals_end_is_not_past_its_end() -> None:
    assert unfilled_reason("m", {"m": due(end=DAY_2[1], due_until=DAY_2[1])}, "prod") is None


def test_every_reason_is_given_together() -> None:
    state = {
        "m": due(missing=(DAY_1,), signals=("s",), parents=("up",), end=0, due_until=DAY_2[1]),
        "up": due(missing=(DAY_1,)),
    }
    reason = unfilled_reason("m", state, "prod")
    assert reason is not None
    parts = reason.split("; ")
    assert [p.split(" ")[0:3] for p in parts] == [
        ["waiting", "on", "upstream"],
        ["waiting", "on", "signal"],
        ["past", "its", "end:"],
    ]
