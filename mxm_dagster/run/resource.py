"""`SQLMeshResultsResource`: SQLMesh once per Dagster run, every asset step reporting its results.

The first asset step of a run to need results starts SQLMesh for the run's whole selection in a
child process (`mxm_dagster.child.execute`); a background thread reads its outcomes and holds a
per-run file lock until the results are written to the instance's storage directory. Steps in the
same process wait only for their own model: a model whose last interval batch succeeded is reported
while SQLMesh evaluates the rest, so Dagster's per-step bookkeeping overlaps SQLMesh's work. Steps
in other processes (multiprocess executor) read the finished results file. A per-project file lock
makes runs that write the same warehouse take turns. Executions are per project: a run selecting
models of two SQLMesh projects of one code location runs each project's SQLMesh once, for that
project's models (the step's PROJECT_TAG names its project), with a results file each.

This module holds the resource: its config, the request it makes of SQLMesh and the order of one
step's work. The shared execution and its waits are in `run.execution`, starting it in
`run.start`, what a step yields in `run.step_output`, records for skipped steps in
`run.skipped_steps`, what an ended execution owes in `run.finalize`, and when a retried step
runs SQLMesh again in `run.retry`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from mxm_dagster.asset_graph.metadata import PROJECT_TAG
from mxm_dagster.common.deprecation import old_names
from mxm_dagster.common.locks import FileLock
from mxm_dagster.common.times import to_ms
from mxm_dagster.project.protocol import STOP_GRACE_SECONDS, ChildOrder, execution_bound_seconds
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.request import PROD, ExecutionRequest
from mxm_dagster.records.results import RunResults
from mxm_dagster.run import retry
from mxm_dagster.run.execution import (
    FINAL_STATUSES,
    SharedExecution,
    executions_of_run,
    started_and_run_executions,
)
from mxm_dagster.run.finalize import finalize
from mxm_dagster.run.skipped_steps import record_skipped_downstream
from mxm_dagster.run.start import start_execution
from mxm_dagster.run.step_output import step_output
from mxm_dagster.run.view import RunView, RunViews, StepView

RESTATE_TAG = "mxm/restate"
UNIT_TESTS_TAG = "mxm/unit_tests"
EXECUTION_TIME_TAG = "mxm/execution_time"  # SQLMesh's "now" for the run, e.g. a schedule's tick
_TRUE = {"1", "true", "yes"}
TERMINATED = "the run was terminated"
# How long an interrupted step waits for SQLMesh to stop: its grace, the kill, the results file.
STOP_WAIT_SECONDS = 2 * STOP_GRACE_SECONDS + 5


def _latest_covering(known: list[SharedExecution], model: str) -> SharedExecution | None:
    covering = [e for e in known if e.covers(model)]
    return max(covering, key=lambda e: e.results_without_models.started_at, default=None)


def _steps_share_process(context: dg.AssetExecutionContext) -> bool:
    return context.job_def.executor_def.name == dg.in_process_executor.name


def _is_canceling(context: dg.InitResourceContext) -> bool:
    """Whether Dagster is terminating this run (the UI's Terminate, `terminateRun`)."""
    if context.instance is None or not context.run_id:
        return False
    run = context.instance.get_run_by_id(context.run_id)
    return run is not None and run.status == dg.DagsterRunStatus.CANCELING


class SQLMeshResultsResource(dg.ConfigurableResource):
    """Named for what the asset steps get from it: it runs SQLMesh once per Dagster run and holds
    the results every asset step reports its own model from (in memory for the steps of its
    process, in the run's results file for the others)."""

    project_dir: str | None = Field(
        default=None,
        description="SQLMesh project folder (several, for a multi-repo project: separated by "
        "os.pathsep); default: the one the assets came from. When set, gateway and environment "
        "are taken as given here (None: the project's default gateway, prod), not from MXM_ "
        "variables",
    )
    gateway: str | None = Field(default=None, description="SQLMesh gateway; default the project's")
    environment: str | None = Field(
        default=None, description="SQLMesh environment; default MXM_SQLMESH_ENVIRONMENT or prod"
    )
    restate: bool = Field(
        default=False,
        description="Recompute the selected models' intervals and, as `sqlmesh plan "
        f"--restate-model` does, every model below them (also: run tag {RESTATE_TAG}=true)",
    )
    execution_time: str | None = Field(
        default=None,
        description="SQLMesh's 'now' for the run, e.g. '2026-11-30 00:00:00': intervals are "
        f"filled up to the last one due by then (also: run tag {EXECUTION_TIME_TAG}); "
        "default: the clock",
    )
    run_unit_tests: bool = Field(
        default=False,
        description="Run the project's SQLMesh unit tests (tests/*.yaml) first; if one fails, "
        f"nothing is planned or run and every step fails (also: run tag {UNIT_TESTS_TAG}=true)",
    )
    row_counts: bool = Field(default=True, description="Count rows of evaluated models")
    audit_unchanged: bool = Field(
        default=False,
        description="Also run the audits of selected models SQLMesh found up to date, on their "
        "unchanged data, so their checks report a result in every run (docs/adr/0012); "
        "default: not again, SQLMesh audited that data when it wrote it (docs/adr/0019)",
    )
    allow_destructive: list[str] = Field(
        default_factory=list,
        description="Forward-only models whose destructive changes (dropped columns) may be "
        "applied: SQLMesh model names or patterns, ['*'] for all; default: refuse",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Writable folder for the project's caches and locks (a read-only project "
        "folder needs one); default MXM_SQLMESH_CACHE_DIR, else the project's .cache",
    )
    lock_timeout_seconds: float = Field(
        default=1800, description="How long a run waits for another run of the same project"
    )
    warehouse_wait_seconds: float = Field(
        default=30, description="How long a run waits for a DuckDB warehouse another process holds"
    )
    execution_timeout_seconds: float = Field(
        default=6 * 3600,
        description="How long one SQLMesh execution may take once it holds the project lock; "
        "then SQLMesh is stopped and the run fails naming the models it did not report. Every "
        "wait of a step for SQLMesh is bounded by it (plus the lock waits)",
    )

    #: What each run means, computed once per run and project in this process (`run.view`).
    _run_views: RunViews | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A fresh cache of run views for the run this resource is initialised for."""
        self._run_views = RunViews()

    def step_view(self, context: dg.AssetExecutionContext) -> StepView:
        """The step's view of the run: the run's part is computed once per run in this process,
        so a step's own work does not grow with the number of models."""
        if self._run_views is None:  # not initialised by Dagster (a direct call)
            self._run_views = RunViews()
        return StepView.of(context, self._run_views.of(context))

    def project(self, context: dg.OpExecutionContext) -> SQLMeshProject:
        """The project this resource names, exactly as named: `sqlmesh_definitions` and the
        component set `project_dir`, gateway and environment, and nothing then comes from the
        MXM_ variables. A resource that names no project (the MXM_-configured code location)
        serves the one this step's assets were built from, with the variables' gateway and
        environment unless the config names them."""
        if self.project_dir:
            return SQLMeshProject.at(
                self.project_dir,
                gateway=self.gateway,
                environment=self.environment or PROD,
                cache_dir=self.cache_dir,
            )
        base = SQLMeshProject.from_env()
        project_dir = context.op_def.tags.get(PROJECT_TAG)
        return SQLMeshProject.at(
            project_dir or base.location,
            gateway=self.gateway or base.gateway,
            environment=self.environment or base.environment,
            cache_dir=self.cache_dir or base.cache_dir,
        )

    # ------------------------------------------------------------------ per step

    def report_model(self, context: dg.AssetExecutionContext, model: str) -> Iterator[Any]:
        """All that the step of `model` yields: materialization, check results or failure.

        A step that yields no MaterializeResult (a partition range SQLMesh did not fill whole,
        or an outcome that materializes nothing) makes Dagster skip its downstream steps; such a
        step waits for the whole execution and records what SQLMesh did for those models.
        """
        project = self.project(context)
        step = self.step_view(context)
        execution = self._execution_for(context, step, model)
        try:
            outcome, results = execution.wait_for(model)
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            self._stop_terminated(context, execution)
            raise
        last = execution.mark_reported(model)
        # A step process of the multiprocess executor that started SQLMesh is the only one that
        # can record what the execution owes, so it waits for the end (as the last step does
        # in-process).
        started_in_own_process = execution.thread is not None and not _steps_share_process(context)
        final = (
            last or started_in_own_process or outcome is None or outcome.status in FINAL_STATUSES
        )
        output = None if outcome is None else step_output(context, step, outcome, results, project)
        if final or (output is not None and not output.materializes):
            final = True
            try:
                results = execution.wait_done()
            except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
                self._stop_terminated(context, execution)
                raise
            outcome = results.outcome(model)
            output = (
                step_output(context, step, outcome, results, project)
                if outcome is not None
                else None
            )
        skips_downstream = output is not None and not output.materializes and not output.checks_only
        if skips_downstream and output is not None and output.failure is None:
            record_skipped_downstream(context, step, execution, results)
        if final:
            finalize(context, step.run, execution, results)
        for message in execution.drain_messages(force=final):
            context.log.info(message)
        if output is None:
            raise dg.Failure(
                description=f"SQLMesh did not consider {model} in this run: it is not part of the "
                "run's selection"
            )
        if output.withheld:
            context.log.warning(output.withheld)
        for record in output.records:
            context.log_event(record)
        yield from output.events
        if output.failure is not None:
            raise output.failure

    @staticmethod
    def _stop_terminated(context: dg.AssetExecutionContext, execution: SharedExecution) -> None:
        """Dagster interrupted the step (the run is being terminated): SQLMesh stops at a safe
        point before the step ends, so no process and no lock outlives the run."""
        context.log.info("Run terminated: stopping SQLMesh at a safe point")
        execution.stop(TERMINATED)
        stopped = execution.wait_stopped(STOP_WAIT_SECONDS)
        for message in execution.drain_messages(force=True):
            context.log.info(message)
        if not stopped:
            context.log.warning(f"SQLMesh did not stop within {STOP_WAIT_SECONDS:.0f} s")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Never let the run end while SQLMesh still writes: wait for this process's threads,
        each at most as long as its execution may take; a run being terminated stops its own."""
        started, own = started_and_run_executions(context.run_id or "")
        canceling = _is_canceling(context)
        if canceling:  # interrupted outside a wait of ours, e.g. while a step yielded events
            for execution in own:
                if execution.results is None and context.log:
                    context.log.info("Run terminated: stopping SQLMesh at a safe point")
                execution.stop(TERMINATED)
        for execution in started:
            if not execution.wait_stopped(execution.wait_bound_seconds or STOP_WAIT_SECONDS):
                if context.log:
                    context.log.warning(
                        "SQLMesh execution "
                        f"{execution.results_without_models.execution_id} outlived its bound"
                    )
        for execution in own if canceling else ():  # how it stopped: no step is left to say
            for message in execution.drain_messages(force=True):
                if context.log:
                    context.log.info(message)
        for execution in own:  # no step could record what it owed: at least say so
            if execution.thread is not None and execution.claim_finalization() and context.log:
                context.log.warning(
                    "No step of this run recorded the end of SQLMesh execution "
                    f"{execution.results_without_models.execution_id}; "
                    "models without a step report: " + ", ".join(sorted(execution.unreported()))
                )

    # ------------------------------------------------------------------ per run

    def _execution_for(
        self, context: dg.AssetExecutionContext, step: StepView, model: str
    ) -> SharedExecution:
        """The execution of this step's project that serves `model`'s step, starting one if this
        step is the first of its project to need it, or if the last one's outcome for it is spent
        by a retry (`run.retry`)."""
        run = step.run
        project = run.project or self.project(context).location
        with executions_of_run(context.run_id, project) as known:
            found = self._serving(context, run, model, known)
            if found is not None:
                return found
            results_file = self.results_file(context, project)
            lock = FileLock(results_file.with_suffix(".lock"), "run's SQLMesh execution")
            # held by another step process's execution of this run: as long as it may take
            lock.acquire(self._execution_bound_seconds(), context.log.info)
            try:
                stored = RunResults.read(results_file) if results_file.is_file() else RunResults()
                seen = {e.results_without_models.execution_id for e in known}
                known.extend(
                    SharedExecution.finished(r)
                    for r in stored.executions
                    if r.execution_id not in seen
                )
                found = self._serving(context, run, model, known)
                if found is not None:
                    lock.release()
                    return found
                retrying = _latest_covering(known, model) is not None
                execution = self._start(context, run, stored, results_file, lock, retrying, model)
            except BaseException:
                lock.release()
                raise
            known.append(execution)
            return execution

    def _execution_bound_seconds(self) -> float:
        """The longest a SQLMesh execution of this resource takes, results file included."""
        bound = execution_bound_seconds(
            self.lock_timeout_seconds, self.warehouse_wait_seconds, self.execution_timeout_seconds
        )
        return bound + STOP_WAIT_SECONDS

    @staticmethod
    def _serving(
        context: dg.AssetExecutionContext, run: RunView, model: str, known: list[SharedExecution]
    ) -> SharedExecution | None:
        """The run's latest execution covering `model`, unless it is finished and its outcome
        for `model` is spent: a step attempt got it and then retried."""
        found = _latest_covering(known, model)
        if found is None or found.results is None:
            return found
        return None if retry.is_spent(context, run, model, found.results) else found

    @staticmethod
    def results_file(context: dg.AssetExecutionContext, project: str) -> Path:
        """Where the run's executions of `project` (its folder) are written: one file per run
        and project, so two projects' model names never meet."""
        digest = hashlib.sha1(project.encode()).hexdigest()[:12]
        runs = Path(context.instance.storage_directory()) / "mxm_dagster" / "runs"
        return runs / f"{context.run_id}-{digest}.json"

    def _wants_restatement(self, context: dg.OpExecutionContext) -> bool:
        return self.restate or context.run.tags.get(RESTATE_TAG, "").lower() in _TRUE

    def _wants_unit_tests(self, context: dg.OpExecutionContext) -> bool:
        return self.run_unit_tests or context.run.tags.get(UNIT_TESTS_TAG, "").lower() in _TRUE

    def _requested_execution_time(self, context: dg.OpExecutionContext) -> str | None:
        """Run config first: the CLI (`--config-json`), the launchpad and Python reach it; the
        tag is what schedules and sensors set on the runs they request."""
        return self.execution_time or context.run.tags.get(EXECUTION_TIME_TAG) or None

    def request(
        self,
        context: dg.OpExecutionContext,
        project: SQLMeshProject,
        selected: set[str],
        window: tuple[datetime, datetime] | None = None,
        checks_only: set[str] | None = None,
    ) -> ExecutionRequest:
        """What this run asks SQLMesh to do for `selected` (and `window`): the resource's config
        and the run's tags. A plan preview asks it the same way (ADR 18)."""
        request = ExecutionRequest(
            environment=project.environment,
            selected=selected,
            checks_only=checks_only or set(),
            audit_unchanged=self.audit_unchanged,
            restate=self._wants_restatement(context),
            row_counts=self.row_counts,
            unit_tests=self._wants_unit_tests(context),
            window=(to_ms(window[0]), to_ms(window[1])) if window else None,
        )
        if execution_time := self._requested_execution_time(context):
            request.plan_options["execution_time"] = execution_time
        if self.allow_destructive:
            request.plan_options["allow_destructive_models"] = list(self.allow_destructive)
        return request

    def _start(
        self,
        context: dg.AssetExecutionContext,
        run: RunView,
        stored: RunResults,
        results_file: Path,
        run_lock: FileLock,
        retrying: bool,
        model: str,
    ) -> SharedExecution:
        """Start SQLMesh in a child process, watched by a thread that owns `run_lock` until the
        results are on disk: for the run's models no execution considered yet, or, `retrying`,
        for the models whose steps retry (`run.retry.retry_models`)."""
        project = self.project(context)
        if retrying:
            wanted = retry.retry_models(context, run, model, stored.executions)
            checks_only: set[str] = set()
            context.log.info(
                f"Retrying {model}: SQLMesh runs again for the {len(wanted)} models of this run "
                "whose steps have not succeeded: " + ", ".join(sorted(wanted))
            )
        else:
            wanted = set(run.models) - stored.considered()
            checks_only = set(run.checks_only) - stored.considered()
        deferred = run.deferred(context, wanted)
        window = run.window
        request = self.request(context, project, wanted - deferred, window, checks_only)
        context.log.info(
            f"Running SQLMesh for {len(request.selected)} selected models in environment "
            f"{project.environment!r} of {project.path}"
            + (f" for {window[0].isoformat()} to {window[1].isoformat()}" if window else "")
            + (f"; {len(deferred)} wait for upstream non-SQLMesh assets" if deferred else "")
            + (f"; the checks alone of {len(checks_only)} models" if checks_only else "")
        )
        order = ChildOrder(
            project,
            request,
            self.lock_timeout_seconds,
            self.warehouse_wait_seconds,
            self.execution_timeout_seconds,
        )
        return start_execution(
            order, stored, results_file, run_lock, thread_name=f"sqlmesh-{context.run_id[:8]}"
        )


#: Names the class had before, still importable (with a DeprecationWarning) by code written then.
__getattr__ = old_names(__name__, {"SQLMeshResource": "SQLMeshResultsResource"}, globals())
