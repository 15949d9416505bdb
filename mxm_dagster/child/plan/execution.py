"""One SQLMesh execution in the child: decide, then do, then audit (docs/adr/0022).

The planner says what will be done (`ExecutionPlan`), the executor does exactly that, the
results are collected from what it did and what SQLMesh's state then says, and the audit pass
audits the current data of what the plan named and the outcomes found up to date.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.plan.audit_pass import audit_current_data
from mxm_dagster.child.plan.collect import collect_results
from mxm_dagster.child.plan.early_reports import EarlyReports
from mxm_dagster.child.plan.executor import Executor
from mxm_dagster.child.plan.planner import plan_execution
from mxm_dagster.child.plan.state_reads import ContextReads
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import ExecutionResults, ModelOutcome
from mxm_dagster.records.specs import LoadedModels


def execute_request(
    context: Context,
    loaded: LoadedModels,
    recorder: OutcomeRecorder,
    request: ExecutionRequest,
    known_plan_id: str | None,
    load_models: Callable[[], None],
    on_model_ready: Callable[[ModelOutcome], None] | None = None,
) -> tuple[ExecutionResults, str | None]:
    """The results, and the plan id the environment now serves the project's files with (None
    when it may not: a narrower plan, failures). `known_plan_id` is the one remembered for
    these files; `load_models` loads them into `context` when a plan needs them;
    `on_model_ready` hears of each model as soon as SQLMesh has written it."""
    reads = ContextReads(context, request.environment, load_models)
    plan = plan_execution(request, loaded, known_plan_id, sqlmesh_api.execution_timestamp(), reads)
    early = plan.call is not None and plan.call.report_early
    reports = EarlyReports(
        context, loaded, recorder, request, on_model_ready, early, plan.command == "plan"
    )
    done = Executor(context, loaded, recorder).carry_out(request, plan)
    results = collect_results(context, loaded, recorder, request, done, reports.row_counts)
    results.command = plan.command
    audit_current_data(context, loaded, recorder, request, plan, results, done.execution_time)
    results.finished_at = time.time()
    return results, done.serving_plan_id
