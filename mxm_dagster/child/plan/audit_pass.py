"""The audit pass: audits on the data the environment already holds, after the plan or run.

Run for the models the plan names (`ExecutionPlan.current_data_audits`: checks selected alone,
and with `audit_unchanged` the selected models) that the outcomes found up to date: SQLMesh
evaluated nothing of them and nothing due is missing (docs/adr/0012, 0019). Recorded apart from
the plan's records, so it never turns what the plan did into something else.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.plan import outcomes
from mxm_dagster.child.plan.execution_plan import ExecutionPlan
from mxm_dagster.child.recorder import ModelRecord, OutcomeRecorder
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import ExecutionResults, ModelStatus
from mxm_dagster.records.specs import LoadedModels


def audit_current_data(
    context: Context,
    loaded: LoadedModels,
    recorder: OutcomeRecorder,
    request: ExecutionRequest,
    plan: ExecutionPlan,
    results: ExecutionResults,
    execution_time: int,
) -> None:
    """Run the audits and put their outcomes on `results`' models, marked `on_unchanged_data`;
    a model whose checks alone ran is `audited`, or `not_filled` when there was no data to
    check (never built, nothing recorded in the run's window)."""
    specs = loaded.by_name()
    to_audit = sorted(
        audit.model
        for audit in plan.current_data_audits
        if audit.model in results.models
        and results.models[audit.model].status is ModelStatus.UP_TO_DATE
    )
    if not to_audit:
        return
    nodes = set(to_audit) | {
        audit.name
        for name in to_audit
        for audit in specs[name].audits
        if audit.standalone and not audit.skip
    }
    records, not_audited = _run(context, recorder, request, to_audit, nodes, execution_time)
    for name in to_audit:
        outcome = results.models[name]
        if name in not_audited:
            if name not in request.selected:  # checks alone: no data to check, no result
                outcome.status = ModelStatus.NOT_FILLED
                outcome.reason = not_audited[name]
            continue
        outcome.audits = outcomes.unchanged_audit_outcomes(specs[name], records, recorder.message)
        if name not in request.selected:
            outcome.status = ModelStatus.AUDITED


def _run(
    context: Context,
    recorder: OutcomeRecorder,
    request: ExecutionRequest,
    models: Collection[str],
    nodes: Collection[str],
    execution_time: int,
) -> tuple[dict[str, ModelRecord], dict[str, str]]:
    """SQLMesh's audit-only pass over `nodes` (`models` and their standalone audits); returns
    its records and, per model not audited, why (logged)."""
    with recorder.separate_records() as records:
        try:
            not_audited = sqlmesh_api.audit_current_data(
                context, request.environment, nodes, execution_time, request.window
            )
        except Exception as exc:  # the plan's work stands: only these checks go unreported
            why = f"SQLMesh could not run them: {type(exc).__name__}: {exc}"
            not_audited = dict.fromkeys(nodes, why)
            records.clear()
    skipped = {name: why for name, why in not_audited.items() if name in models}
    for name, why in sorted(skipped.items()):
        recorder.message(f"Not running the audits of {name} on its current data: {why}")
    return records, skipped
