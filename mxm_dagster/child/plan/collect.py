"""The execution's results: each model's outcome from what the executor did, what the console
recorded and what SQLMesh's state says once SQLMesh is done."""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.plan import outcomes
from mxm_dagster.child.plan.executor import Done
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import ExecutionResults, ModelStatus
from mxm_dagster.records.specs import LoadedModels, ModelSpec


def collect_results(
    context: Context,
    loaded: LoadedModels,
    recorder: OutcomeRecorder,
    request: ExecutionRequest,
    done: Done,
    row_counts: dict[str, int | None],
) -> ExecutionResults:
    """Every model the execution concerned, evaluated elsewhere (SQLMesh's upstream), selected,
    or with checks selected. `row_counts` holds the counts the early reports took already."""
    specs = loaded.by_name()
    models = {name for name, spec in specs.items() if spec.is_model}
    records = recorder.records
    evaluated_elsewhere = {n for n, r in records.items() if r.evaluated_batches and n in models}
    tables = sqlmesh_api.promoted_tables(context, request.environment)
    names = (
        done.involved | evaluated_elsewhere | ((request.selected | request.checks_only) & models)
    )
    statuses = outcomes.model_statuses(names, records, done.excluded, models)
    unevaluated = [
        n
        for n, status in statuses.items()
        if status is ModelStatus.UP_TO_DATE and n not in request.checks_only
    ]
    due = _due_intervals(context, request, specs, unevaluated, done.execution_time)
    results = request.results_without_models()
    results.models = outcomes.model_outcomes(
        request,
        specs,
        statuses,
        outcomes.unfilled_reasons(unevaluated, due, request.environment),
        done.excluded,
        records,
        tables,
        row_counts,
        lambda table: sqlmesh_api.count_rows(context, table),
        recorder.message,
        done.execution_time,
        restated=recorder.restated,
    )
    for name, version in _data_versions(context, request, results, recorder.message).items():
        results.models[name].data_version = version
    for name, by in done.held_back.items():
        if name in results.models:
            results.models[name].held_back_by = by
            results.models[name].failed_upstream = None
    results.plan_attempts = done.attempts
    results.execution_time = done.execution_time
    return results


def _data_versions(
    context: Context,
    request: ExecutionRequest,
    results: ExecutionResults,
    log: Callable[[str], None],
) -> dict[str, str]:
    """The data versions of the models the environment serves, read from state once SQLMesh
    is done (ADR 15); a run whose writes succeeded is not failed for them."""
    served = [name for name, o in results.models.items() if o.snapshot_version]
    try:
        return sqlmesh_api.data_versions(context, request.environment, served)
    except Exception as exc:
        log(
            "Could not read the data versions from SQLMesh's state; these materializations "
            f"carry Dagster's default data version: {type(exc).__name__}: {exc}"
        )
        return {}


def _due_intervals(
    context: Context,
    request: ExecutionRequest,
    specs: dict[str, ModelSpec],
    names: Collection[str],
    execution_time: int,
) -> dict[str, sqlmesh_api.DueIntervals]:
    """What SQLMesh's state says is due for `names`, models SQLMesh did not evaluate, and
    for the models they read (to tell waiting on upstream), in the environment SQLMesh just
    left; nothing is read when every model was evaluated."""
    if not names:
        return {}
    parents = {p for n in names for p in specs[n].depends_on if p in specs and specs[p].is_model}
    start, end = request.window or (None, None)
    return sqlmesh_api.due_intervals(
        context, request.environment, set(names) | parents, execution_time, start, end
    )
