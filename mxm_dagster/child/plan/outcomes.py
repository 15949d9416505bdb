"""Each model's outcome from what the console recorded and what SQLMesh's state then says.

Plain functions of records the executor gathered (recorder records, promoted tables, due
intervals): they make no SQLMesh call, and are tested with hand-built records.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.recorder import ModelRecord
from mxm_dagster.common.times import iso_from_ms
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import AuditOutcome, ModelOutcome, ModelStatus, TableInfo
from mxm_dagster.records.specs import AuditSpec, ModelSpec


def _audits_ran(model: ModelSpec, record: ModelRecord, audit: AuditSpec) -> bool:
    """Whether SQLMesh ran every audit of the node in at least one batch.

    SQLMesh reports per batch only how many audits passed and failed; it runs all of a node's
    audits in each batch (a `skip` audit counts as passed), then raises if a blocking one failed.
    So a batch whose count equals the node's audits, or that stopped on a blocking failure, ran
    each of them. Any other count says too little to claim a pass.
    """
    if record.unheard_failures:  # some failure was counted but not named: any audit may be it
        return False
    expected = 1 if audit.standalone else sum(1 for a in model.audits if not a.standalone)
    return record.audits_blocked or expected in record.audit_counts


def _failure(audit: AuditSpec, failures: list[AuditOutcome]) -> AuditOutcome:
    """One audit's failures over every batch: rows added up, the first batch's query."""
    return AuditOutcome(
        name=audit.name,
        passed=False,
        blocking=audit.blocking and any(f.blocking for f in failures),
        failed_rows=sum(f.failed_rows for f in failures),
        query=failures[0].query,
        check_name=audit.check_name,
        failed_batches=sum(max(f.failed_batches, 1) for f in failures),
    )


def _check_of(model: ModelSpec, failure: AuditOutcome) -> str:
    """The check a failure belongs to; one SQLMesh named only by audit goes to its first use."""
    if failure.check_name:
        return failure.check_name
    return next((a.check_name for a in model.audits if a.name == failure.name), failure.name)


def _audit_outcomes(
    model: ModelSpec,
    record: ModelRecord | None,
    records: Mapping[str, ModelRecord],
    log: Callable[[str], None] | None = None,
) -> list[AuditOutcome]:
    """Outcomes only for audits that ran: failures as SQLMesh reported them, passes only where
    SQLMesh's counts show the audit ran (see `_audits_ran`). `skip` audits never run."""
    outcomes: list[AuditOutcome] = []
    unproven: list[str] = []
    for audit in model.audits:
        source = records.get(audit.name) if audit.standalone else record
        if audit.skip or source is None:
            continue
        failures = [
            f
            for f in source.audit_failures
            if audit.standalone or _check_of(model, f) == audit.check_name
        ]
        if failures:
            outcomes.append(_failure(audit, failures))
        elif _audits_ran(model, source, audit):
            outcomes.append(
                AuditOutcome(audit.name, True, audit.blocking, check_name=audit.check_name)
            )
        elif source.audit_counts and not source.unheard_failures:  # that one is logged already
            counts = sorted(set(source.audit_counts))
            unproven.append(f"{audit.check_name} (SQLMesh counted {counts} audits per batch)")
    if unproven and log is not None:
        log(
            f"Not reporting {', '.join(unproven)} of {model.name} as passed: its node declares "
            "a different number of audits, so which of them ran is unknown"
        )
    return outcomes


def unchanged_audit_outcomes(
    model: ModelSpec, records: Mapping[str, ModelRecord], log: Callable[[str], None]
) -> list[AuditOutcome]:
    """The audits SQLMesh ran on the data the environment already held (`records` of that
    audit-only pass alone), marked so."""
    found = _audit_outcomes(model, records.get(model.name), records, log)
    return [replace(audit, on_unchanged_data=True) for audit in found]


def model_outcome(
    spec: ModelSpec,
    record: ModelRecord | None,
    status: ModelStatus,
    selected: bool,
    table: TableInfo,
    failed_upstream: str | None = None,
    row_count: int | None = None,
    records: Mapping[str, ModelRecord] | None = None,
    log: Callable[[str], None] | None = None,
    restated: bool = False,
) -> ModelOutcome:
    """`records` holds what the console recorded of every node: standalone audits are nodes.
    `restated`: a plan restated the model; it counts only where SQLMesh then evaluated it."""
    return ModelOutcome(
        restated=restated and status is ModelStatus.EVALUATED,
        model=spec.name,
        status=status,
        selected=selected,
        error=record.error if record else None,
        failed_upstream=failed_upstream,
        audits=_audit_outcomes(spec, record, records or {}, log),
        intervals=list(record.intervals) if record else [],
        duration_ms=record.duration_ms if record and record.evaluated_batches else None,
        row_count=row_count,
        **table,
    )


def _status(record: ModelRecord | None, excluded: bool) -> ModelStatus:
    """What SQLMesh did with a model in this execution, before checking what is still due."""
    if record is not None and record.error is not None:
        return ModelStatus.FAILED
    if excluded:
        return ModelStatus.SKIPPED
    if record is not None and record.evaluated_batches:
        return ModelStatus.EVALUATED
    if record is not None and record.audited_batches:
        return ModelStatus.AUDITED
    return ModelStatus.UP_TO_DATE


def unfilled_reason(
    name: str, due: dict[str, sqlmesh_api.DueIntervals], environment: str
) -> str | None:
    """Why SQLMesh left intervals of `name` due and missing, as precisely as its state tells;
    None when nothing due is missing (intervals not due yet leave a model up to date).

    A model past its `end` with every interval up to its end recorded misses nothing: SQLMesh
    never fills after the end, so nothing there is due (see `ended_note`). Past its end and
    still missing intervals before it, it is not filled, and the end is part of the reason."""
    state = due.get(name)
    if state is None:
        return f"SQLMesh's environment {environment!r} holds no version of this model"
    if not state.missing:
        return None
    reasons: list[str] = []
    waiting_on = [p for p in state.parents if p in due and due[p].missing]
    if waiting_on:
        reasons.append(
            f"waiting on upstream {', '.join(waiting_on)}, which SQLMesh has not filled "
            "for the same intervals"
        )
    if state.signals:
        reasons.append(
            f"waiting on signal {', '.join(state.signals)}: it did not report "
            f"{_span(state.missing)} ready"
        )
    if not reasons:
        reasons.append(f"SQLMesh left {_span(state.missing)} unfilled without an error")
    if state.past_end:
        reasons.append(
            f"past its end: the model ends at {iso_from_ms(state.end or 0)}, and SQLMesh fills no "
            f"interval after it (its cron made intervals due up to {iso_from_ms(state.due_until)})"
        )
    return "; ".join(reasons)


def ended_note(spec: ModelSpec, status: ModelStatus, execution_time: int) -> str | None:
    """For a model that is up to date past its `end`: that it ended, and that SQLMesh fills
    nothing after it, so the record of a complete model does not read like a stalled one."""
    if status is not ModelStatus.UP_TO_DATE or spec.end_ms is None or spec.end_ms > execution_time:
        return None
    return (
        f"ended at {iso_from_ms(spec.end_ms)}: SQLMesh fills no interval after the model's end, "
        "and none due before it is missing"
    )


def _span(intervals: Collection[tuple[int, int]]) -> str:
    """Missing intervals in a few words: how many, from where to where."""
    first, last = min(a for a, _ in intervals), max(b for _, b in intervals)
    count = len(intervals)
    span = f"[{iso_from_ms(first)}, {iso_from_ms(last)})"
    return f"{count} due interval{'s' if count > 1 else ''} {span}"


_PROMOTED = {
    ModelStatus.EVALUATED,
    ModelStatus.UP_TO_DATE,
    ModelStatus.AUDITED,
    ModelStatus.NOT_FILLED,
}


def model_statuses(
    names: Collection[str],
    records: Mapping[str, ModelRecord],
    excluded: Collection[str],
    models: Collection[str],
) -> dict[str, ModelStatus]:
    """What SQLMesh did with each of `names` that is a model, in name order."""
    return {
        name: _status(records.get(name), name in excluded)
        for name in sorted(names)
        if name in models
    }


def unfilled_reasons(
    names: Collection[str], due: dict[str, sqlmesh_api.DueIntervals], environment: str
) -> dict[str, str]:
    """Why each of `names` still misses intervals due by its cron; none for a model up to date."""
    reasons = {name: unfilled_reason(name, due, environment) for name in names}
    return {name: reason for name, reason in reasons.items() if reason is not None}


def model_outcomes(
    request: ExecutionRequest,
    specs: Mapping[str, ModelSpec],
    statuses: Mapping[str, ModelStatus],
    reasons: Mapping[str, str],
    excluded: Mapping[str, str],
    records: Mapping[str, ModelRecord],
    tables: Mapping[str, TableInfo],
    row_counts: dict[str, int | None],
    count_rows: Callable[[str], int | None],
    log: Callable[[str], None],
    execution_time: int,
    restated: Collection[str] = (),
) -> dict[str, ModelOutcome]:
    """Each model's outcome. `reasons` are those of `unfilled_reasons`; `tables` are the promoted
    ones; `row_counts` holds the counts taken already (by early reports) and gains those
    `count_rows` takes of the tables the environment's views serve for evaluated models;
    `restated` are the models SQLMesh's plans restated."""
    outcomes: dict[str, ModelOutcome] = {}
    for name, status in statuses.items():
        record = records.get(name)
        if name in reasons:
            status = ModelStatus.NOT_FILLED
        table = tables.get(name, TableInfo()) if status in _PROMOTED else TableInfo()
        served = sqlmesh_api.served_table(table)
        wants_count = request.row_counts and status is ModelStatus.EVALUATED and served
        if wants_count and name not in row_counts:
            row_counts[name] = count_rows(served)
        outcome = model_outcome(
            specs[name],
            record,
            status,
            name in request.selected,
            table,
            failed_upstream=excluded.get(name) if status is ModelStatus.SKIPPED else None,
            row_count=row_counts.get(name) if status is ModelStatus.EVALUATED else None,
            records=records,
            log=log,
            restated=name in restated,
        )
        outcome.reason = reasons.get(name) or ended_note(specs[name], status, execution_time)
        outcomes[name] = outcome
    return outcomes
