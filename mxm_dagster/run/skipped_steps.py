"""Recording, from one step, what SQLMesh did for the models whose steps Dagster skips.

A step that yields no MaterializeResult (a partition range SQLMesh did not fill whole, or an
outcome that materializes nothing) makes Dagster skip the steps downstream of it in the run
("due to skipped dependencies"). SQLMesh may still have evaluated and audited those models, so
the skipping step records their materializations and check results in their place.
"""

from __future__ import annotations

import dagster as dg

from mxm_dagster.records.results import ExecutionResults, ModelOutcome
from mxm_dagster.run import data_versions, events
from mxm_dagster.run.execution import FINAL_STATUSES, SharedExecution
from mxm_dagster.run.view import StepView


def record_skipped_downstream(
    context: dg.AssetExecutionContext,
    step: StepView,
    execution: SharedExecution,
    results: ExecutionResults,
) -> None:
    """Record, from this step, the models whose steps Dagster skips because this step yields
    no output: SQLMesh's materializations and audit results for them, and why."""
    skipped = step.run.downstream(step.asset_key)
    if not skipped:
        return
    models_by_key = step.run.models_by_key
    sqlmesh_keys = step.run.sqlmesh_keys
    upstream = step.asset_key.to_user_string()
    lines: list[str] = []
    for key in skipped:
        model = models_by_key.get(key)
        if model is None and key in sqlmesh_keys:  # its project's SQLMesh runs from its steps
            lines.append(f"{key.to_user_string()} (a model of another SQLMesh project: not run)")
        elif model is None:
            lines.append(f"{key.to_user_string()} (not a SQLMesh model)")
        elif execution.claim_skipped_step(model):
            outcome = results.outcome(model)
            lines.append(_record_skipped(context, step, key, outcome, results))
    if lines:
        context.log.warning(
            f"Dagster skips the steps downstream of {upstream} in this run, as the step of "
            f"{upstream} yields no output. What SQLMesh did for them is recorded here: "
            + "; ".join(lines)
        )


def _record_skipped(
    context: dg.AssetExecutionContext,
    step: StepView,
    key: dg.AssetKey,
    outcome: ModelOutcome | None,
    results: ExecutionResults,
) -> str:
    """Log one skipped step's materialization(s) and audit results; say what they were."""
    name = key.to_user_string()
    if outcome is None:
        return f"{name}: not evaluated (not part of this SQLMesh execution)"
    notes = [outcome.status.value]
    if outcome.intervals and outcome.status not in FINAL_STATUSES:
        partitions_def = step.run.partitions_def(key)
        tags = data_versions.event_tags(context.instance, step.run, key, outcome, results)
        records = (
            events.partition_materializations(key, partitions_def, outcome, results, tags=tags)
            if partitions_def is not None
            else [
                events.materialization_for(
                    key,
                    outcome,
                    results,
                    description="Evaluated by SQLMesh in this run; Dagster skipped its step "
                    "because an upstream step recorded no materialization",
                    tags=tags,
                )
            ]
        )
        for record in records:
            context.log_event(record)
        notes.append(f"{len(records)} materialization(s) recorded")
    for audit in outcome.audits:
        context.log_event(events.check_evaluation(key, audit))
    if outcome.audits:
        notes.append(f"{len(outcome.audits)} audit result(s) recorded")
    if outcome.error:
        notes.append(f"error: {outcome.error}")
    return f"{name}: " + ", ".join(notes)
