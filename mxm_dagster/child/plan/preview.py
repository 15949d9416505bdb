"""A plan preview: the plan a run of the same request would apply, built and never applied.

The decision is the run's (`planner.plan_call`: the same selection with its missing
upstream, the models below a restatement, the window, the execution time), and the plan is
built with the run's arguments (`sqlmesh_api.plan_arguments`), so what it shows is what the
run would do. A run that plans without `run` and then runs what is still due (`fill_after`) is
previewed as two plans, the second only for its intervals. Nothing here applies a plan (ADR 18).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.plan.decision import Decision
from mxm_dagster.child.plan.planner import plan_call
from mxm_dagster.child.plan.state_reads import ContextReads
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.child.unit_tests import check_unit_tests
from mxm_dagster.common.errors import UnitTestsFailedError
from mxm_dagster.records.preview import PlanPreview, add_due_after
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.specs import LoadedModels


def preview_plan(
    context: Context,
    spec: LoadedModels,
    recorder: OutcomeRecorder,
    request: ExecutionRequest,
    load_models: Callable[[], None],
) -> PlanPreview:
    """What SQLMesh would do for `request`: each change, its category and diff, the intervals
    it would fill, the destructive changes it would refuse. What would stop the run before
    SQLMesh applies anything (a failing unit test the run asks for, SQLMesh refusing the plan,
    e.g. a new environment without a change) is the preview's `error`."""
    models = {m.name for m in spec.models if m.is_model}
    clock = sqlmesh_api.execution_timestamp()
    reads = ContextReads(context, request.environment, load_models)
    reads.load_models()
    decision, _deployed = plan_call(request, models, clock, reads)
    execution_time = sqlmesh_api.execution_timestamp(decision.execution_time)
    preview = PlanPreview(
        environment=request.environment,
        execution_time=execution_time,
        messages=list(decision.messages),
        fills_after=decision.fill_after,
    )
    if request.unit_tests:  # a run asked to test first plans nothing when a test fails
        try:
            check_unit_tests(context, recorder.message)
        except UnitTestsFailedError as exc:
            preview.error = str(exc)
            return preview
    if not decision.models:
        preview.messages.append("Nothing selected is a SQLMesh model: a run would plan nothing")
        return preview
    try:
        plan, refused = sqlmesh_api.build_plan(context, recorder, _arguments(request, decision))
        sqlmesh_api.check_stages(context, plan)
    except Exception as exc:  # refused before anything ran: the run fails with the same error
        preview.error = f"{type(exc).__name__}: {sqlmesh_api.plain_text(str(exc))}"
        return preview
    preview.models = sqlmesh_api.model_previews(plan, refused)
    if decision.fill_after:
        # the run goes on with `sqlmesh run` for what is still due: a plan with `run` fills that
        after = _arguments(request, decision, restate=False, run=True, allowed=refused)
        due_plan, _ = sqlmesh_api.build_plan(context, recorder, after)
        due = sqlmesh_api.model_previews(due_plan, {})
        add_due_after(preview.models, due, {n for n in decision.models if n in models})
    return preview


def _arguments(
    request: ExecutionRequest,
    decision: Decision,
    restate: bool = True,
    run: bool | None = None,
    allowed: dict[str, str] | None = None,
) -> dict[str, object]:
    options = dict(decision.options)
    if allowed:
        options["allow_destructive_models"] = [
            *options.get("allow_destructive_models", ()),  # type: ignore[misc]
            *allowed,
        ]
    return sqlmesh_api.plan_arguments(
        request.environment,
        select_models=decision.select_models,
        restate_models=decision.restate if restate else (),
        run=decision.run_due if run is None else run,
        backfill_models=decision.backfill_models,
        **options,  # type: ignore[arg-type]
    )
