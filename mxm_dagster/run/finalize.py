"""What a SQLMesh execution owes once it ended, recorded by one step of the run.

SQLMesh may evaluate models beyond the run's selection (upstream models with due intervals, the
models below a restated one); no step of the run reports them, so
their materializations and the results of the audits SQLMesh ran on them are logged here. An outcome
reported early (before SQLMesh promoted the environment) that did not hold is said loudly.
"""

from __future__ import annotations

import dagster as dg

from mxm_dagster.records.results import ExecutionResults, ModelStatus
from mxm_dagster.run import data_versions, events
from mxm_dagster.run.execution import FINAL_STATUSES, SharedExecution
from mxm_dagster.run.view import RunView

RESTATED_BELOW = (
    "Restated by SQLMesh: it is downstream of a model this run restated, and SQLMesh restates "
    "every model below a restated one"
)


def finalize(
    context: dg.AssetExecutionContext,
    run: RunView,
    execution: SharedExecution,
    results: ExecutionResults,
) -> None:
    """Once per execution: records for models evaluated beyond the selection, named by the
    keys of the definitions being run (`RunView.keys_by_model`), and a loud error if an outcome
    reported early did not hold."""
    if not execution.claim_finalization():
        return
    for outcome in results.models.values():
        key = run.keys_by_model.get(outcome.model)
        if outcome.selected or key is None:
            continue
        if outcome.status is ModelStatus.EVALUATED:
            why = {"description": RESTATED_BELOW} if outcome.restated else {}
            partitions_def = run.partitions_def(key)
            tags = data_versions.event_tags(context.instance, run, key, outcome, results)
            if partitions_def is None:
                context.log_event(
                    events.materialization_for(key, outcome, results, tags=tags, **why)
                )
            else:
                for record in events.partition_materializations(
                    key, partitions_def, outcome, results, tags=tags
                ):
                    context.log_event(record)
        elif outcome.status is ModelStatus.FAILED:  # no step of the run fails for it: say so
            context.log.error(
                f"SQLMesh model {outcome.model} ({key.to_user_string()}), which this run did "
                f"not select, failed: {outcome.error}. The models that succeeded are promoted "
                "without it (failure isolation)"
            )
        elif outcome.status is ModelStatus.SKIPPED and outcome.held_back_by:
            context.log.warning(
                f"SQLMesh evaluated {outcome.model} ({key.to_user_string()}), which this run did "
                f"not select, but it is not promoted: {outcome.held_back_by} reads it and failed"
            )
        elif outcome.status is ModelStatus.SKIPPED:
            context.log.warning(
                f"SQLMesh did not evaluate {outcome.model} ({key.to_user_string()}), which this "
                f"run did not select: upstream model {outcome.failed_upstream} failed"
            )
        for audit in outcome.audits:  # SQLMesh audited it with its evaluation: say how it went
            context.log_event(events.check_evaluation(key, audit))
    changed = sorted(
        name
        for name in execution.reported_early()
        if (o := results.outcome(name)) is not None and o.status in FINAL_STATUSES
    )
    if changed:
        context.log.error(
            f"SQLMesh did not promote {', '.join(changed)} after they were reported "
            "materialized; see the failures of this run"
        )
