"""The planner turns what the console recorded of a model's audits into check outcomes."""

from __future__ import annotations

from mxm_dagster.child.plan.outcomes import _audit_outcomes, model_outcome
from mxm_dagster.child.recorder import ModelRecord
from mxm_dagster.records.results import AuditOutcome, ModelStatus
from mxm_dagster.records.specs import AuditSpec
from tests.unit.specs_factory import model, ms

NOT_NULL_ID = AuditSpec("not_null", "not_null_id", True, {"columns": "id"})
NOT_NULL_V = AuditSpec("not_null", "not_null_v", True, {"columns": "v"})
RANGE = AuditSpec("accepted_range", "accepted_range", False)
SKIPPED = AuditSpec("unique_values", "unique_values", True, skip=True)
FRESH = AuditSpec("assert_fresh", "assert_fresh", False, standalone=True)

SPEC = model(audits=(NOT_NULL_ID, RANGE))


def fail(name: str, rows: int, check: str = "", blocking: bool = False) -> AuditOutcome:
    return AuditOutcome(name, False, blocking, failed_rows=rows, query=f"q{rows}", check_name=check)


def by_check(outcomes: list[AuditOutcome]) -> dict[str, AuditOutcome]:
    return {o.check_name: o for o in outcomes}


def test_audits_pass_when_a_batch_ran_every_audit_of_the_model() -> None:
    outcomes = _audit_outcomes(SPEC, ModelRecord(audit_counts=[2]), {})
    assert outcomes == [
        AuditOutcome("not_null", True, True, check_name="not_null_id"),
        AuditOutcome("accepted_range", True, False, check_name="accepted_range"),
    ]


def test_no_audit_is_reported_when_none_ran() -> None:
    assert _audit_outcomes(SPEC, ModelRecord(), {}) == []
    assert _audit_outcomes(SPEC, None, {}) == []


def test_a_count_unlike_the_models_audits_claims_no_pass_and_says_why() -> None:
    logged: list[str] = []
    assert _audit_outcomes(SPEC, ModelRecord(audit_counts=[1]), {}, logged.append) == []
    assert logged == [
        "Not reporting not_null_id (SQLMesh counted [1] audits per batch), accepted_range "
        f"(SQLMesh counted [1] audits per batch) of {SPEC.name} as passed: its node declares a "
        "different number of audits, so which of them ran is unknown"
    ]


def test_unheard_failures_claim_no_pass() -> None:
    record = ModelRecord(audit_counts=[2], unheard_failures=1)
    assert _audit_outcomes(SPEC, record, {}) == []


def test_a_batch_stopped_on_a_blocking_failure_ran_every_audit() -> None:
    record = ModelRecord(
        audit_counts=[1],
        audits_blocked=True,
        audit_failures=[fail("not_null", 2, "not_null_id", blocking=True)],
    )
    outcomes = by_check(_audit_outcomes(SPEC, record, {}))
    assert outcomes["not_null_id"].passed is False
    assert outcomes["not_null_id"].blocking is True
    assert outcomes["accepted_range"].passed is True


def test_failing_rows_are_summed_over_batches_with_the_first_query() -> None:
    record = ModelRecord(
        audit_counts=[2, 2, 2],
        audit_failures=[fail("accepted_range", 3), fail("accepted_range", 4)],
    )
    outcomes = by_check(_audit_outcomes(SPEC, record, {}))
    assert outcomes["accepted_range"] == AuditOutcome(
        "accepted_range",
        False,
        False,
        failed_rows=7,
        query="q3",
        check_name="accepted_range",
        failed_batches=2,
    )
    assert outcomes["not_null_id"].passed is True


def test_a_failure_is_blocking_only_if_the_audit_is_and_sqlmesh_said_it_blocked() -> None:
    record = ModelRecord(audit_counts=[2], audit_failures=[fail("not_null", 1, "not_null_id")])
    assert by_check(_audit_outcomes(SPEC, record, {}))["not_null_id"].blocking is False
    spec = model(audits=(RANGE,))
    blocked = fail("accepted_range", 1, blocking=True)
    record = ModelRecord(audit_counts=[1], audit_failures=[blocked])
    assert by_check(_audit_outcomes(spec, record, {}))["accepted_range"].blocking is False


def test_a_repeated_audit_reports_each_failure_to_its_own_check() -> None:
    spec = model(audits=(NOT_NULL_ID, NOT_NULL_V))
    record = ModelRecord(
        audit_counts=[2],
        audit_failures=[fail("not_null", 5, "not_null_v")],
    )
    outcomes = by_check(_audit_outcomes(spec, record, {}))
    assert outcomes["not_null_v"].passed is False and outcomes["not_null_v"].failed_rows == 5
    assert outcomes["not_null_id"].passed is True


def test_a_failure_named_only_by_audit_goes_to_its_first_use() -> None:
    spec = model(audits=(NOT_NULL_ID, NOT_NULL_V))
    record = ModelRecord(audit_counts=[2], audit_failures=[fail("not_null", 5)])
    outcomes = by_check(_audit_outcomes(spec, record, {}))
    assert outcomes["not_null_id"].passed is False
    assert outcomes["not_null_v"].passed is True


def test_a_skip_audit_is_never_reported_though_counted() -> None:
    spec = model(audits=(NOT_NULL_ID, SKIPPED))
    outcomes = _audit_outcomes(spec, ModelRecord(audit_counts=[2]), {})
    assert [o.check_name for o in outcomes] == ["not_null_id"]


def test_a_standalone_audit_reports_from_its_own_node() -> None:
    spec = model(audits=(NOT_NULL_ID, FRESH))
    ran = _audit_outcomes(
        spec, ModelRecord(audit_counts=[1]), {"assert_fresh": ModelRecord(audit_counts=[1])}
    )
    assert by_check(ran) == {
        "not_null_id": AuditOutcome("not_null", True, True, check_name="not_null_id"),
        "assert_fresh": AuditOutcome("assert_fresh", True, False, check_name="assert_fresh"),
    }
    failed = _audit_outcomes(
        spec,
        ModelRecord(audit_counts=[1]),
        {"assert_fresh": ModelRecord(audit_counts=[1], audit_failures=[fail("assert_fresh", 9)])},
    )
    assert by_check(failed)["assert_fresh"].failed_rows == 9
    not_run = _audit_outcomes(spec, ModelRecord(audit_counts=[1]), {})
    assert [o.check_name for o in not_run] == ["not_null_id"]


def test_a_model_outcome_carries_what_the_record_and_the_table_say() -> None:
    interval = (ms(2024, 1, 1), ms(2024, 1, 2))
    record = ModelRecord(
        expected_batches=1,
        evaluated_batches=1,
        intervals=[interval],
        duration_ms=33,
        audit_counts=[2],
    )
    table = {"snapshot_version": "v1", "fingerprint": "fp", "physical_table": "p", "view": "v"}
    outcome = model_outcome(SPEC, record, ModelStatus.EVALUATED, True, table, row_count=4)
    assert outcome.model == SPEC.name
    assert outcome.status is ModelStatus.EVALUATED
    assert outcome.intervals == [interval]
    assert outcome.duration_ms == 33
    assert outcome.row_count == 4
    assert (outcome.snapshot_version, outcome.physical_table, outcome.view) == ("v1", "p", "v")
    assert [a.passed for a in outcome.audits] == [True, True]


def test_a_model_not_evaluated_has_no_duration_and_carries_its_error() -> None:
    record = ModelRecord(error="boom", duration_ms=0)
    outcome = model_outcome(SPEC, record, ModelStatus.FAILED, False, {})
    assert outcome.duration_ms is None
    assert outcome.error == "boom"
    assert outcome.selected is False
    skipped = model_outcome(SPEC, None, ModelStatus.SKIPPED, True, {}, failed_upstream="up")
    assert (skipped.error, skipped.failed_upstream, skipped.intervals) == (None, "up", [])


def test_an_unproven_standalone_audit_is_logged_with_its_own_nodes_counts() -> None:
    logged: list[str] = []
    spec = model(audits=(NOT_NULL_ID, FRESH))
    records = {"assert_fresh": ModelRecord(audit_counts=[2])}
    ran = _audit_outcomes(spec, ModelRecord(audit_counts=[1]), records, logged.append)
    assert [o.check_name for o in ran] == ["not_null_id"]
    assert logged == [
        f"Not reporting assert_fresh (SQLMesh counted [2] audits per batch) of {spec.name} as "
        "passed: its node declares a different number of audits, so which of them ran is unknown"
    ]
