"""A model's outcome -> its asset step's events, from hand-built outcomes."""

from __future__ import annotations

import dagster as dg
import pytest

from mxm_dagster.asset_graph.partitions import partitions_def_from_model
from mxm_dagster.records.results import AuditOutcome, ExecutionResults, ModelOutcome, ModelStatus
from mxm_dagster.run.events import (
    AUDITS_METADATA_KEY,
    AUDITS_NOT_RUN_AGAIN,
    check_result,
    partition_materializations,
    provenance,
    step_events,
)
from tests.unit.specs_factory import model, ms

MODEL = '"db"."s"."orders"'
KEY = dg.AssetKey(["db", "s", "orders"])
DAY_1 = (ms(2024, 1, 1), ms(2024, 1, 2))
DAY_2 = (ms(2024, 1, 2), ms(2024, 1, 3))


def results(**fields) -> ExecutionResults:
    return ExecutionResults(
        execution_id="exec-1",
        environment="dev",
        models={},
        started_at=1.0,
        finished_at=2.0,
        **fields,
    )


def outcome(status: ModelStatus, **fields) -> ModelOutcome:
    defaults = {
        "audits": [
            AuditOutcome("not_null", True, True, check_name="not_null"),
            AuditOutcome("unique_key", False, False, failed_rows=3, check_name="unique_key"),
        ],
        "intervals": [DAY_1, DAY_2],
        "duration_ms": 120,
        "snapshot_version": "v1",
        "fingerprint": "fp",
        "physical_table": "sqlmesh__s.s__orders__v1",
        "view": "s.orders",
        "row_count": 42,
    }
    return ModelOutcome(model=MODEL, status=status, **{**defaults, **fields})


def checks(*names: str) -> set[dg.AssetCheckKey]:
    return {dg.AssetCheckKey(KEY, name) for name in names}


@pytest.mark.parametrize(
    ("status", "changed"),
    [
        (ModelStatus.EVALUATED, True),
        (ModelStatus.UP_TO_DATE, False),
        (ModelStatus.AUDITED, False),
    ],
)
def test_a_successful_model_yields_one_materialization_with_only_the_selected_checks(
    status: ModelStatus, changed: bool
) -> None:
    events = list(step_events(outcome(status), results(), checks("unique_key")))
    assert len(events) == 1
    (result,) = events
    assert isinstance(result, dg.MaterializeResult)
    assert result.metadata is not None
    assert result.metadata["sqlmesh/data_changed"] is changed
    assert result.metadata["sqlmesh/outcome"] == status.value
    assert [c.check_name for c in result.check_results or []] == ["unique_key"]
    assert [c.passed for c in result.check_results or []] == [False]


def test_no_selected_check_gives_a_materialization_without_check_results() -> None:
    (result,) = step_events(outcome(ModelStatus.EVALUATED), results(), set())
    assert isinstance(result, dg.MaterializeResult)
    assert not result.check_results


def test_a_model_left_unfilled_yields_its_checks_but_no_materialization() -> None:
    events = list(
        step_events(
            outcome(ModelStatus.NOT_FILLED, reason="waiting on signal"),
            results(),
            checks("not_null", "unique_key"),
        )
    )
    assert all(isinstance(e, dg.AssetCheckResult) for e in events)
    assert sorted(e.check_name for e in events) == ["not_null", "unique_key"]


def test_a_failed_model_fails_its_step_with_the_error_after_its_checks() -> None:
    failed = outcome(ModelStatus.FAILED, error="Binder Error: column x not found")
    events = step_events(failed, results(), checks("not_null"))
    first = next(events)
    assert isinstance(first, dg.AssetCheckResult) and first.check_name == "not_null"
    with pytest.raises(dg.Failure) as raised:
        next(events)
    assert raised.value.description == (
        f"SQLMesh model {MODEL} failed: Binder Error: column x not found"
    )
    assert raised.value.metadata["sqlmesh/execution_id"].value == "exec-1"


def test_a_model_skipped_for_a_failed_upstream_fails_naming_the_upstream() -> None:
    skipped = outcome(ModelStatus.SKIPPED, failed_upstream='"db"."s"."raw"', audits=[])
    with pytest.raises(dg.Failure) as raised:
        list(step_events(skipped, results(), set()))
    assert raised.value.description == (
        f'SQLMesh did not evaluate {MODEL}: upstream model "db"."s"."raw" failed in this run'
    )
    assert raised.value.metadata["sqlmesh/failed_upstream"].value == '"db"."s"."raw"'


def test_a_model_of_an_execution_that_never_started_says_sqlmesh_stopped_before_it() -> None:
    not_started = ExecutionResults.not_started("dev", {MODEL}, "Config error: no gateway")
    with pytest.raises(dg.Failure) as raised:
        list(step_events(not_started.models[MODEL], not_started, set()))
    assert raised.value.description == (
        "SQLMesh stopped before evaluating any model in this run, so "
        f"{MODEL} was not evaluated: Config error: no gateway"
    )


def test_restated_is_the_models_own_not_the_runs() -> None:
    """A restating run also fills due intervals of models it does not restate (upstream ones):
    their records must not say restated; a model below a restated one says so, selected or not."""
    restating = results(restated=True)
    upstream = provenance(outcome(ModelStatus.EVALUATED, selected=False), restating)
    below = provenance(outcome(ModelStatus.EVALUATED, selected=False, restated=True), restating)
    assert (upstream["sqlmesh/restated"], below["sqlmesh/restated"]) == (False, True)


def test_provenance_carries_the_execution_and_the_models_table() -> None:
    metadata = provenance(
        outcome(ModelStatus.EVALUATED, reported_before_promotion=True, restated=True),
        results(command="run", restated=True),
    )
    assert {k: v for k, v in metadata.items() if k != "sqlmesh/intervals"} == {
        "sqlmesh/model": MODEL,
        "sqlmesh/outcome": "evaluated",
        "sqlmesh/execution_id": "exec-1",
        "sqlmesh/environment": "dev",
        "sqlmesh/command": "run",
        "sqlmesh/selected": True,
        "sqlmesh/reported_before_promotion": True,
        "sqlmesh/restated": True,
        "sqlmesh/snapshot_version": "v1",
        "sqlmesh/fingerprint": "fp",
        "sqlmesh/physical_table": "sqlmesh__s.s__orders__v1",
        "sqlmesh/view": "s.orders",
        "sqlmesh/duration_ms": 120,
        "dagster/row_count": 42,
    }
    assert metadata["sqlmesh/intervals"].value == [
        ["2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"],
        ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"],
    ]


def test_provenance_of_an_unevaluated_model_has_empty_fields_and_no_row_count() -> None:
    bare = ModelOutcome(model=MODEL, status=ModelStatus.UP_TO_DATE)
    metadata = provenance(bare, results())
    assert metadata["sqlmesh/snapshot_version"] == ""
    assert metadata["sqlmesh/view"] == ""
    assert metadata["sqlmesh/duration_ms"] == 0
    assert metadata["sqlmesh/intervals"].value == []
    assert "dagster/row_count" not in metadata
    assert "sqlmesh/reason" not in metadata


def test_provenance_of_a_model_past_its_end_says_it_ended() -> None:
    ended = ModelOutcome(model=MODEL, status=ModelStatus.UP_TO_DATE, reason="ended at X")
    assert provenance(ended, results())["sqlmesh/reason"] == "ended at X"


def test_a_blocking_audit_is_an_error_check_and_a_non_blocking_one_a_warning() -> None:
    blocking = check_result(AuditOutcome("not_null", True, True, check_name="not_null"))
    warning = check_result(AuditOutcome("range", True, False, check_name="range"))
    assert blocking.severity == dg.AssetCheckSeverity.ERROR
    assert warning.severity == dg.AssetCheckSeverity.WARN


def test_a_failed_check_reports_its_rows_batches_and_query() -> None:
    result = check_result(
        AuditOutcome(
            "unique_key",
            False,
            False,
            failed_rows=7,
            query="SELECT 1",
            check_name="unique_key_id",
            failed_batches=2,
        )
    )
    assert result.check_name == "unique_key_id"
    assert result.passed is False
    assert result.metadata["sqlmesh/audit"].value == "unique_key"
    assert result.metadata["failed_rows"].value == 7
    assert result.metadata["sqlmesh/failed_batches"].value == 2
    assert result.metadata["audit_query"].value == "```sql\nSELECT 1\n```"


def test_a_passed_check_has_no_failed_batches_nor_query() -> None:
    result = check_result(AuditOutcome("not_null", True, True, check_name="not_null"))
    assert result.metadata["failed_rows"].value == 0
    assert "sqlmesh/failed_batches" not in result.metadata
    assert "audit_query" not in result.metadata


def _daily():
    partitions_def = partitions_def_from_model(model(start_ms=ms(2024, 1, 1)))
    assert partitions_def is not None
    return partitions_def


def test_every_filled_partition_gets_a_record_when_the_output_covers_none() -> None:
    records = partition_materializations(KEY, _daily(), outcome(ModelStatus.EVALUATED), results())
    assert [r.partition for r in records] == ["2024-01-01", "2024-01-02"]
    assert all(r.asset_key == KEY for r in records)
    assert records[0].metadata["sqlmesh/execution_id"].value == "exec-1"


def test_partitions_the_output_covers_get_no_extra_record() -> None:
    records = partition_materializations(
        KEY, _daily(), outcome(ModelStatus.EVALUATED), results(), covered={"2024-01-02"}
    )
    assert [r.partition for r in records] == ["2024-01-01"]


@pytest.mark.parametrize("status", [ModelStatus.FAILED, ModelStatus.SKIPPED])
def test_a_failed_or_skipped_model_records_no_partition(status: ModelStatus) -> None:
    assert partition_materializations(KEY, _daily(), outcome(status), results()) == []


def test_a_step_of_checks_alone_yields_only_check_results() -> None:
    audits = [AuditOutcome("not_null", True, True, check_name="not_null", on_unchanged_data=True)]
    events = list(
        step_events(
            outcome(ModelStatus.AUDITED, audits=audits),
            results(),
            checks("not_null"),
            asset_selected=False,
        )
    )
    assert [type(e) for e in events] == [dg.AssetCheckResult]
    assert events[0].metadata["sqlmesh/data_unchanged"].value is True


def test_a_check_run_in_the_evaluation_says_nothing_of_unchanged_data() -> None:
    result = check_result(AuditOutcome("not_null", True, True, check_name="not_null"))
    assert "sqlmesh/data_unchanged" not in result.metadata


@pytest.mark.parametrize("status", [ModelStatus.EVALUATED, ModelStatus.UP_TO_DATE])
def test_the_materialization_carries_sqlmeshs_data_version(status: ModelStatus) -> None:
    """Evaluated or up to date, the data version is what state gave the outcome (ADR 15)."""
    (result,) = step_events(outcome(status, data_version="abc123"), results(), set())
    assert isinstance(result, dg.MaterializeResult)
    assert result.data_version == dg.DataVersion("abc123")
    (unknown,) = step_events(outcome(status), results(), set())
    assert isinstance(unknown, dg.MaterializeResult)
    assert unknown.data_version is None  # not served: Dagster's own default


def test_an_up_to_date_model_without_check_results_says_its_audits_did_not_run_again() -> None:
    """ADR 19: no result is made up for an audit that did not run; the record says why."""
    unaudited = outcome(ModelStatus.UP_TO_DATE, audits=[])
    (result,) = step_events(unaudited, results(), checks("not_null"))
    assert isinstance(result, dg.MaterializeResult)
    assert not result.check_results
    assert result.metadata[AUDITS_METADATA_KEY] == AUDITS_NOT_RUN_AGAIN
    audits = [AuditOutcome("not_null", True, True, check_name="not_null", on_unchanged_data=True)]
    (audited,) = step_events(
        outcome(ModelStatus.UP_TO_DATE, audits=audits), results(), checks("not_null")
    )
    assert isinstance(audited, dg.MaterializeResult)
    assert AUDITS_METADATA_KEY not in audited.metadata  # audit_unchanged: the results say it
    (evaluated,) = step_events(
        outcome(ModelStatus.EVALUATED, audits=[]), results(), checks("not_null")
    )
    assert isinstance(evaluated, dg.MaterializeResult)
    assert AUDITS_METADATA_KEY not in evaluated.metadata
