"""Outcome records survive the JSON that carries them to every step process."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mxm_dagster.records.results import (
    AuditOutcome,
    ExecutionResults,
    ModelOutcome,
    ModelStatus,
    RunResults,
)
from tests.unit.specs_factory import ms


def execution(execution_id: str = "exec-1", window: tuple[int, int] | None = None):
    return ExecutionResults(
        execution_id=execution_id,
        environment="dev",
        models={
            "a": ModelOutcome(
                model="a",
                status=ModelStatus.EVALUATED,
                audits=[
                    AuditOutcome(
                        "unique_key",
                        False,
                        True,
                        failed_rows=3,
                        query="SELECT 1",
                        check_name="unique_key_id",
                        failed_batches=2,
                    )
                ],
                intervals=[(ms(2024, 1, 1), ms(2024, 1, 2))],
                duration_ms=5,
                row_count=10,
                reported_before_promotion=True,
            ),
            "b": ModelOutcome(model="b", status=ModelStatus.NOT_FILLED, reason="signal"),
            "c": ModelOutcome(model="c", status=ModelStatus.SKIPPED, failed_upstream="a"),
        },
        started_at=1.5,
        finished_at=2.5,
        plan_attempts=2,
        command="run",
        restated=True,
        window=window,
        execution_time=ms(2024, 1, 2),
    )


def test_execution_results_survive_their_json_form() -> None:
    original = execution(window=(ms(2024, 1, 1), ms(2024, 1, 2)))
    restored = ExecutionResults.from_dict(json.loads(json.dumps(asdict(original))))
    assert restored == original
    assert restored.models["a"].status is ModelStatus.EVALUATED
    assert restored.models["a"].intervals == [(ms(2024, 1, 1), ms(2024, 1, 2))]
    assert restored.partitioned


def test_run_results_written_are_read_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "results.json"
    original = RunResults([execution("exec-1"), execution("exec-2")])
    original.write(path)
    assert RunResults.read(path) == original
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left


def test_considered_holds_every_model_of_every_execution() -> None:
    first = execution("exec-1")
    up_to_date = {"d": ModelOutcome("d", ModelStatus.UP_TO_DATE)}
    second = ExecutionResults("exec-2", "dev", up_to_date, 0, 0)
    assert RunResults([first, second]).considered() == {"a", "b", "c", "d"}


def test_an_execution_that_never_started_fails_every_model_with_its_error() -> None:
    results = ExecutionResults.not_started("dev", {"a", "b"}, "boom")
    assert results.plan_attempts == 0
    assert {m: (o.status, o.error) for m, o in results.models.items()} == {
        "a": (ModelStatus.FAILED, "boom"),
        "b": (ModelStatus.FAILED, "boom"),
    }
    assert results.outcome("a") is results.models["a"]
    assert results.outcome("missing") is None
