"""Step retries within a run: when an execution's outcome is spent, and what runs again.

A Dagster `RetryPolicy` re-runs a failed step in the same run. Its first attempt read its model's
FAILED (or SKIPPED-by-failure) outcome from the run's execution; handing the retry that same
outcome back would retry nothing. So an outcome that did not succeed is *spent* once a step
retried after that execution started: the step that retries, or a step upstream of it in the run
(whose retry is why this step runs at all). The step then starts a new SQLMesh execution for every
model of the run whose step has not ended and whose last outcome did not succeed (the retrying
steps and what they block), except models below a failed model that is not retried: SQLMesh
would evaluate those on the failed model's old data.

The arithmetic is in pure functions ending in `_of`, as in `run.selection`; the functions taking a
context read the run's step events from the instance (every step process sees them), and the
run's models and keys from its `RunView`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import dagster as dg

from mxm_dagster.records.results import ExecutionResults, ModelStatus
from mxm_dagster.run import selection
from mxm_dagster.run.view import RunView

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

# After these SQLMesh produced nothing for the model in that execution.
NOT_SUCCEEDED = frozenset({ModelStatus.FAILED, ModelStatus.SKIPPED})
_STEP_ENDED = (
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED,
)

# ---------------------------------------------------------------------- pure


def ancestors_of(graph: AssetGraph, key: dg.AssetKey) -> set[dg.AssetKey]:
    """Every asset upstream of `key` in `graph`, through any asset."""
    found: set[dg.AssetKey] = set()
    frontier = [key]
    while frontier:
        current = frontier.pop()
        for parent in graph.get(current).parent_keys if graph.has(current) else ():
            if parent not in found:
                found.add(parent)
                frontier.append(parent)
    return found


def is_spent_of(status: ModelStatus | None, started_at: float, retried_at: Iterable[float]) -> bool:
    """Whether an outcome that did not succeed was already handed to a step attempt that then
    retried: some retry (`retried_at`: when the step, or one upstream of it, went up for retry)
    came after the execution started. An outcome that succeeded is never spent."""
    return status in NOT_SUCCEEDED and any(t > started_at for t in retried_at)


def retry_models_of(
    graph: AssetGraph,
    asset_keys_by_model: Mapping[str, dg.AssetKey],
    run_models: Iterable[str],
    latest: Mapping[str, ModelStatus],
    ended: set[str],
    model: str,
) -> set[str]:
    """The models a retry execution for `model` runs.

    `latest`: each model's status in its last execution of the run; `ended`: models whose step
    ended (succeeded, failed for good, skipped). Every model of the run that did not succeed and
    whose step has not ended goes again, with `model`; not those below a model that did not
    succeed and does not go again (its step failed for good).
    """
    wanted = {m for m in run_models if latest.get(m) in NOT_SUCCEEDED and m not in ended} | {model}
    models_by_key = {key: name for name, key in asset_keys_by_model.items()}
    ancestors = {
        m: {
            models_by_key[k]
            for k in ancestors_of(graph, asset_keys_by_model[m])
            if k in models_by_key
        }
        for m in wanted
        if m in asset_keys_by_model
    }
    run = set(run_models)
    while True:
        left_behind = {m for m in run if latest.get(m) in NOT_SUCCEEDED} - wanted
        blocked = {m for m in wanted if m != model and ancestors.get(m, set()) & left_behind}
        if not blocked:
            return wanted
        wanted -= blocked


# ---------------------------------------------------------------------- from a step's context


def retried_at(context: dg.AssetExecutionContext, run: RunView, model: str) -> list[float]:
    """When the step of `model`, or a step of the run upstream of it, went up for retry."""
    key = run.keys_by_model[model]
    layer = context.job_def.asset_layer
    keys = {key} | (ancestors_of(run.graph, key) & run.run_keys)
    steps = {step for k in keys if (step := selection.step_key(layer, k)) is not None}
    records = context.instance.all_logs(
        context.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
    )
    return [r.timestamp for r in records if r.step_key in steps]


def is_spent(
    context: dg.AssetExecutionContext, run: RunView, model: str, results: ExecutionResults
) -> bool:
    """Whether the finished `results` already served a step attempt of `model` (or upstream of it)
    that retried, so the step must not get its outcome that did not succeed again."""
    outcome = results.outcome(model)
    status = outcome.status if outcome is not None else None
    if status not in NOT_SUCCEEDED:
        return False
    return is_spent_of(status, results.started_at, retried_at(context, run, model))


def retry_models(
    context: dg.AssetExecutionContext,
    run: RunView,
    model: str,
    executions: Iterable[ExecutionResults],
) -> set[str]:
    """The models the retry execution that `model`'s step starts runs (`executions`: the run's
    finished executions)."""
    latest: dict[str, ModelStatus] = {}
    for results in sorted(executions, key=lambda r: r.started_at):
        latest.update({name: outcome.status for name, outcome in results.models.items()})
    by_step = {step: model for model, step in run.steps_by_model.items()}
    records = context.instance.all_logs(context.run_id, of_type=set(_STEP_ENDED))
    ended = {by_step[r.step_key] for r in records if r.step_key in by_step}
    return retry_models_of(run.graph, run.keys_by_model, run.models, latest, ended, model)
