"""What one asset step yields and logs for its model's outcome, with the partition rule of ADR 5.

Dagster records every partition of a ranged step from its one output, whatever SQLMesh filled
(no hook to record fewer). So the output is yielded only when SQLMesh filled every partition of
the range; otherwise the step yields its check results only, one materialization per partition
SQLMesh filled, and a note on why the others were not filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from mxm_dagster.asset_graph import partitions
from mxm_dagster.common.times import from_ms, iso_from_ms, to_ms
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus
from mxm_dagster.records.specs import ModelSpec
from mxm_dagster.run import data_versions, events
from mxm_dagster.run.view import StepView


@dataclass
class StepOutput:
    """What one asset step yields and logs."""

    events: list[Any]
    failure: dg.Failure | None
    records: list[dg.AssetMaterialization] = field(default_factory=list)
    withheld: str | None = None  # why the step's MaterializeResult is not yielded
    checks_only: bool = False  # the step's asset is not selected, only its checks

    @property
    def materializes(self) -> bool:
        return any(isinstance(e, dg.MaterializeResult) for e in self.events)


def step_output(
    context: dg.AssetExecutionContext,
    step: StepView,
    outcome: ModelOutcome,
    results: ExecutionResults,
    project: SQLMeshProject,
) -> StepOutput:
    """The step's events for `outcome`, with the partition rule of ADR 5 applied; `project`'s
    spec says why partitions were not filled."""
    produced: list[Any] = []
    failure: dg.Failure | None = None
    asset_selected = step.asset_selected
    try:
        produced.extend(
            events.step_events(
                outcome,
                results,
                selected_checks=step.selected_checks,
                asset_selected=asset_selected,
            )
        )
    except dg.Failure as exc:
        failure = exc
    if not asset_selected:
        note = None if produced or failure else _no_check_note(outcome)
        return StepOutput(produced, failure, withheld=note, checks_only=True)
    withheld = (
        f"SQLMesh did not fill {outcome.model} in this run: {outcome.reason}"
        if outcome.status is ModelStatus.NOT_FILLED
        else None
    )
    partitions_def = step.partitions_def
    if partitions_def is None or failure is not None:
        return StepOutput(produced, failure, withheld=withheld)
    step_keys = list(step.partition_keys)
    filled = set(events.filled_partitions(partitions_def, outcome))
    unfilled = [k for k in step_keys if k not in filled]
    if unfilled and any(isinstance(e, dg.MaterializeResult) for e in produced):
        produced = [
            check
            for e in produced
            for check in (e.check_results or [] if isinstance(e, dg.MaterializeResult) else [e])
        ]
        withheld = _unfilled_note(
            context, outcome, results, project, partitions_def, step_keys, unfilled
        )
    output = StepOutput(produced, None, withheld=withheld)
    covered = set(step_keys) if output.materializes else set()
    tags = data_versions.event_tags(context.instance, step.run, step.asset_key, outcome, results)
    output.records = events.partition_materializations(
        step.asset_key, partitions_def, outcome, results, covered, tags
    )
    return output


def _no_check_note(outcome: ModelOutcome) -> str:
    """Why a step of checks alone reports no result."""
    why = outcome.reason or f"SQLMesh reported no audit of it ({outcome.status.value})"
    return f"No check result for {outcome.model}: its audits did not run on current data: {why}"


def _unfilled_note(
    context: dg.AssetExecutionContext,
    outcome: ModelOutcome,
    results: ExecutionResults,
    project: SQLMeshProject,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    step_keys: list[str],
    unfilled: list[str],
) -> str:
    """Which partitions of the step's range SQLMesh did not fill, and why."""
    execution_time = execution_time_of(results)
    # The spec, not the asset's metadata: a translator may drop metadata, and the end and
    # cron_tz are SQLMesh's resolution of the model
    model = project.load_spec().by_name().get(outcome.model)
    # Partitions recorded in Dagster were filled by SQLMesh in an earlier run (ADR 5)
    materialized = context.instance.get_materialized_partitions(context.asset_key)
    by_reason: dict[str, list[str]] = {}
    for key in unfilled:
        end = partitions_def.time_window_for_partition_key(key).end
        reason = partition_unfilled_reason(
            outcome, results, end, model, execution_time, key in materialized
        )
        by_reason.setdefault(reason, []).append(key)
    reasons = "; ".join(f"{', '.join(keys)}: {reason}" for reason, keys in by_reason.items())
    filled = len(step_keys) - len(unfilled)
    return (
        f"SQLMesh filled {filled} of the {len(step_keys)} partitions of {outcome.model} in "
        f"this run's range {step_keys[0]}...{step_keys[-1]}, so no materialization is "
        "recorded for the range (Dagster would mark all of it); each partition SQLMesh "
        f"filled is recorded on its own. Not filled: {reasons}. Dagster skips the steps "
        "downstream of this one in this run."
    )


def execution_time_of(results: ExecutionResults) -> datetime:
    """SQLMesh's "now" for the execution, as the SQLMesh child fixed it (else its start)."""
    if results.execution_time is not None:
        return from_ms(results.execution_time)
    return datetime.fromtimestamp(results.started_at, tz=UTC)


def partition_unfilled_reason(
    outcome: ModelOutcome,
    results: ExecutionResults,
    interval_end: datetime,
    model: ModelSpec | None,
    execution_time: datetime | None,
    materialized_before: bool,
) -> str:
    """Why SQLMesh left one partition of the step's range unfilled in this execution.

    A partition after the model's `end` is never filled, whatever the clock: that comes first.
    Due-ness follows the model's cron in its `cron_tz`, as SQLMesh's does."""
    as_of = (
        f"as of the execution time {execution_time.isoformat()}"
        if execution_time
        else "as of the run's execution time"
    )
    if model is not None and model.end_ms is not None and to_ms(interval_end) > model.end_ms:
        return (
            f"past its end (ends at {iso_from_ms(model.end_ms)}): SQLMesh fills no interval "
            "after the model's end"
        )
    if execution_time is not None and interval_end > execution_time:
        return f"not complete {as_of}"
    cron = model.cron if model is not None else None
    cron_tz = model.cron_tz if model is not None else None
    if (
        execution_time is not None
        and cron
        and not partitions.is_due(cron, cron_tz, interval_end, execution_time)
    ):
        in_zone = f" in {cron_tz}" if cron_tz else ""
        return f"not due by the model's cron {cron!r}{in_zone} {as_of}"
    if outcome.status is ModelStatus.NOT_FILLED and outcome.reason:  # SQLMesh's reason
        return outcome.reason
    if results.restated:
        return "due, but SQLMesh did not restate it in this run"
    if materialized_before:
        return "already recorded by SQLMesh (materialized in an earlier run), not restated"
    return (
        "not filled by SQLMesh in this run, which gave no reason (already filled while "
        "partitions were off, or waiting on a signal)"
    )
