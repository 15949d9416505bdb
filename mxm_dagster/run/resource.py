"""`SQLMeshResultsResource`: SQLMesh once per Dagster run, each asset step reporting its own model.

The first asset step of a run to need results starts SQLMesh for the run's whole selection in a
child process (`mxm_dagster.child.execute`); a background thread reads its outcomes and holds a
per-run file lock until the results are written to the instance's storage directory. Steps in the
same process wait only for their own model: a model whose last interval batch succeeded is reported
while SQLMesh evaluates the rest, so Dagster's per-step bookkeeping overlaps SQLMesh's work. Steps
in other processes (multiprocess executor) read the finished results file. A per-project file lock
makes runs that write the same warehouse take turns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mxm_dagster.assets import partitions
from mxm_dagster.assets.loader import PROJECT_TAG, built_asset_key_for_model
from mxm_dagster.common.locks import FileLock
from mxm_dagster.common.project import SQLMeshProject
from mxm_dagster.common.times import from_ms, iso_from_ms, to_ms
from mxm_dagster.records.protocol import ChildOrder
from mxm_dagster.records.request import PROD, ExecutionRequest
from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus, RunResults
from mxm_dagster.records.specs import ModelSpec
from mxm_dagster.run import events, selection
from mxm_dagster.run.child import ExecutionFailed, run_in_child

RESTATE_TAG = "mxm/restate"
EXECUTION_TIME_TAG = "mxm/execution_time"  # SQLMesh's "now" for the run, e.g. a schedule's tick
PROGRESS_INTERVAL_SECONDS = 2.0
_TRUE = {"1", "true", "yes"}
_FINAL = {ModelStatus.FAILED, ModelStatus.SKIPPED}


class _Execution:
    """One SQLMesh execution as this process sees it: running on a thread, or read from disk."""

    def __init__(self, results_without_models: ExecutionResults, models: set[str]) -> None:
        self.results_without_models = results_without_models
        self.models = models
        self.results: ExecutionResults | None = None
        self.thread: threading.Thread | None = None
        self._early: dict[str, ModelOutcome] = {}
        self._messages: list[str] = []
        self._progress: list[str] = []
        self._last_drain = 0.0
        self._reported: set[str] = set()
        self._recorded_for_skipped_steps: set[str] = set()
        self._finalized = False
        self._cond = threading.Condition()

    @classmethod
    def finished(cls, results: ExecutionResults) -> _Execution:
        execution = cls(results, set(results.models))
        execution.results = results
        execution._finalized = True  # the process that ran it records what it owes
        return execution

    def covers(self, model: str) -> bool:
        return model in self.models or (self.results is not None and model in self.results.models)

    # called from the SQLMesh thread
    def model_ready(self, outcome: ModelOutcome) -> None:
        with self._cond:
            self._early[outcome.model] = outcome
            self._progress.append(f"{outcome.model} ({outcome.duration_ms} ms)")
            self._cond.notify_all()

    def log(self, message: str) -> None:
        with self._cond:
            self._messages.append(message)

    def finish(self, results: ExecutionResults) -> None:
        with self._cond:
            self.results = results
            self._cond.notify_all()

    # called from asset steps
    def wait_for(self, model: str) -> tuple[ModelOutcome | None, ExecutionResults]:
        with self._cond:
            self._cond.wait_for(lambda: model in self._early or self.results is not None)
            if model in self._early and self.results is None:
                return self._early[model], self.results_without_models
            assert self.results is not None
            return self.results.outcome(model), self.results

    def wait_done(self) -> ExecutionResults:
        with self._cond:
            self._cond.wait_for(lambda: self.results is not None)
            assert self.results is not None
            return self.results

    def drain_messages(self, force: bool = False) -> list[str]:
        """SQLMesh's messages and per-model progress, at most every few seconds unless forced:
        every log line is an event Dagster stores, so progress is batched, not one per model."""
        with self._cond:
            now = time.monotonic()
            if not force and now - self._last_drain < PROGRESS_INTERVAL_SECONDS:
                return []
            self._last_drain = now
            messages, self._messages = self._messages, []
            if self._progress:
                messages.append(
                    f"SQLMesh evaluated {len(self._progress)} model(s): "
                    + ", ".join(self._progress)
                )
                self._progress = []
            return messages

    def mark_reported(self, model: str) -> bool:
        """True when every model of this execution has now been reported in this process."""
        with self._cond:
            self._reported.add(model)
            return self.models <= self._reported

    def claim_skipped_step(self, model: str) -> bool:
        """Whether the caller records `model`, whose step Dagster skips (once per process)."""
        with self._cond:
            if model in self._recorded_for_skipped_steps:
                return False
            self._recorded_for_skipped_steps.add(model)
            self._reported.add(model)
            return True

    def unreported(self) -> set[str]:
        with self._cond:
            return self.models - self._reported

    def reported_early(self) -> set[str]:
        with self._cond:
            return set(self._early)

    def claim_finalization(self) -> bool:
        with self._cond:
            claimed, self._finalized = not self._finalized, True
            return claimed


def _steps_share_process(context: dg.AssetExecutionContext) -> bool:
    return context.job_def.executor_def.name == dg.in_process_executor.name


_process_lock = threading.Lock()
_executions_by_run: dict[str, list[_Execution]] = {}


class SQLMeshResultsResource(dg.ConfigurableResource):
    """Runs SQLMesh once per Dagster run and hands each asset step its model's outcome."""

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
        description=f"Recompute the selected models' intervals (also: run tag {RESTATE_TAG}=true)",
    )
    execution_time: str | None = Field(
        default=None,
        description="SQLMesh's 'now' for the run, e.g. '2026-11-30 00:00:00': intervals are "
        f"filled up to the last one due by then (also: run tag {EXECUTION_TIME_TAG}); "
        "default: the clock",
    )
    row_counts: bool = Field(default=True, description="Count rows of evaluated models")
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

    def project(self, context: dg.AssetExecutionContext) -> SQLMeshProject:
        """The project this resource names, exactly as named: `sqlmesh_definitions` and the
        component set `project_dir`, gateway and environment, and nothing then comes from the
        MXM_ variables. A resource that names no project (the MXM_-configured code location)
        serves the one this step's assets were built from, with the variables' gateway and
        environment unless the config names them."""
        if self.project_dir:
            return SQLMeshProject.at(
                self.project_dir, gateway=self.gateway, environment=self.environment or PROD
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
        execution = self._execution_for(context, model)
        outcome, results = execution.wait_for(model)
        last = execution.mark_reported(model)
        # A step process of the multiprocess executor that started SQLMesh is the only one that
        # can record what the execution owes, so it waits for the end (as the last step does
        # in-process).
        started_in_own_process = execution.thread is not None and not _steps_share_process(context)
        final = last or started_in_own_process or outcome is None or outcome.status in _FINAL
        output = self._step_output(context, outcome, results) if outcome is not None else None
        if final or (output is not None and not output.materializes):
            final = True
            results = execution.wait_done()
            outcome = results.outcome(model)
            output = self._step_output(context, outcome, results) if outcome is not None else None
        if output is not None and not output.materializes and output.failure is None:
            self._record_skipped_downstream(context, execution, results)
        if final:
            self._finalize(context, execution, results)
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

    def _step_output(
        self, context: dg.AssetExecutionContext, outcome: ModelOutcome, results: ExecutionResults
    ) -> _StepOutput:
        """The step's events, with the partition rule of ADR 5 applied.

        Dagster records every partition of a ranged step from its one output, whatever SQLMesh
        filled (no hook to record fewer). So the output is yielded only when SQLMesh filled
        every partition of the range; otherwise the step yields its check results only and one
        materialization per partition SQLMesh filled.
        """
        produced: list[Any] = []
        failure: dg.Failure | None = None
        try:
            produced.extend(
                events.step_events(
                    outcome, results, selected_checks=context.selected_asset_check_keys
                )
            )
        except dg.Failure as exc:
            failure = exc
        withheld = (
            f"SQLMesh did not fill {outcome.model} in this run: {outcome.reason}"
            if outcome.status is ModelStatus.NOT_FILLED
            else None
        )
        partitions_def = selection.partitions_def_in_graph(context, context.asset_key)
        if partitions_def is None or failure is not None:
            return _StepOutput(produced, failure, withheld=withheld)
        step_keys = selection.step_partition_keys(context)
        filled = set(events.filled_partitions(partitions_def, outcome))
        unfilled = [k for k in step_keys if k not in filled]
        if unfilled and any(isinstance(e, dg.MaterializeResult) for e in produced):
            produced = [
                check
                for e in produced
                for check in (e.check_results or [] if isinstance(e, dg.MaterializeResult) else [e])
            ]
            withheld = self._unfilled_note(
                context, outcome, results, partitions_def, step_keys, unfilled
            )
        output = _StepOutput(produced, None, withheld=withheld)
        covered = set(step_keys) if output.materializes else set()
        output.records = events.partition_materializations(
            context.asset_key, partitions_def, outcome, results, covered
        )
        return output

    def _unfilled_note(
        self,
        context: dg.AssetExecutionContext,
        outcome: ModelOutcome,
        results: ExecutionResults,
        partitions_def: dg.TimeWindowPartitionsDefinition,
        step_keys: list[str],
        unfilled: list[str],
    ) -> str:
        """Which partitions of the step's range SQLMesh did not fill, and why."""
        execution_time = self._execution_time(results)
        # The spec, not the asset's metadata: a translator may drop metadata, and the end and
        # cron_tz are SQLMesh's resolution of the model
        model = self.project(context).load_spec().by_name().get(outcome.model)
        # Partitions recorded in Dagster were filled by SQLMesh in an earlier run (ADR 5)
        materialized = context.instance.get_materialized_partitions(context.asset_key)
        by_reason: dict[str, list[str]] = {}
        for key in unfilled:
            end = partitions_def.time_window_for_partition_key(key).end
            reason = _unfilled_reason(
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

    @staticmethod
    def _execution_time(results: ExecutionResults) -> datetime:
        """SQLMesh's "now" for the execution, as the SQLMesh child fixed it (else its start)."""
        if results.execution_time is not None:
            return from_ms(results.execution_time)
        return datetime.fromtimestamp(results.started_at, tz=UTC)

    def _record_skipped_downstream(
        self, context: dg.AssetExecutionContext, execution: _Execution, results: ExecutionResults
    ) -> None:
        """Record, from this step, the models whose steps Dagster skips because this step yields
        no output: SQLMesh's materializations and audit results for them, and why."""
        skipped = selection.downstream_in_run(context, context.asset_key)
        if not skipped:
            return
        models_by_key = {
            key: name for name, key in selection.asset_keys_by_model_in_graph(context).items()
        }
        upstream = context.asset_key.to_user_string()
        lines: list[str] = []
        for key in skipped:
            model = models_by_key.get(key)
            if model is None:
                lines.append(f"{key.to_user_string()} (not a SQLMesh model)")
            elif execution.claim_skipped_step(model):
                lines.append(self._record_skipped(context, key, results.outcome(model), results))
        if lines:
            context.log.warning(
                f"Dagster skips the steps downstream of {upstream} in this run, as the step of "
                f"{upstream} yields no output. What SQLMesh did for them is recorded here: "
                + "; ".join(lines)
            )

    @staticmethod
    def _record_skipped(
        context: dg.AssetExecutionContext,
        key: dg.AssetKey,
        outcome: ModelOutcome | None,
        results: ExecutionResults,
    ) -> str:
        """Log one skipped step's materialization(s) and audit results; say what they were."""
        name = key.to_user_string()
        if outcome is None:
            return f"{name}: not evaluated (not part of this SQLMesh execution)"
        notes = [outcome.status.value]
        if outcome.intervals and outcome.status not in _FINAL:
            partitions_def = selection.partitions_def_in_graph(context, key)
            records = (
                events.partition_materializations(key, partitions_def, outcome, results)
                if partitions_def is not None
                else [
                    events.materialization_for(
                        key,
                        outcome,
                        results,
                        description="Evaluated by SQLMesh in this run; Dagster skipped its step "
                        "because an upstream step recorded no materialization",
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

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Never let the run end while SQLMesh still writes: wait for this process's threads."""
        with _process_lock:
            threads = [e.thread for runs in _executions_by_run.values() for e in runs if e.thread]
            own = list(_executions_by_run.get(context.run_id or "", []))
        for thread in threads:
            thread.join()
        for execution in own:  # no step could record what it owed: at least say so
            if execution.thread is not None and execution.claim_finalization() and context.log:
                context.log.warning(
                    "No step of this run recorded the end of SQLMesh execution "
                    f"{execution.results_without_models.execution_id}; "
                    "models without a step report: " + ", ".join(sorted(execution.unreported()))
                )

    # ------------------------------------------------------------------ per run

    def _execution_for(self, context: dg.AssetExecutionContext, model: str) -> _Execution:
        """The execution that covers `model`, starting one if this step is the first to need it."""
        with _process_lock:
            known = _executions_by_run.setdefault(context.run_id, [])
            found = next((e for e in known if e.covers(model)), None)
            if found is not None:
                return found
            results_file = self._results_dir(context) / f"{context.run_id}.json"
            lock = FileLock(results_file.with_suffix(".lock"), "run's SQLMesh execution")
            lock.acquire(self.lock_timeout_seconds, context.log.info)
            try:
                stored = RunResults.read(results_file) if results_file.is_file() else RunResults()
                seen = {e.results_without_models.execution_id for e in known}
                known.extend(
                    _Execution.finished(r) for r in stored.executions if r.execution_id not in seen
                )
                found = next((e for e in known if e.covers(model)), None)
                if found is not None:
                    lock.release()
                    return found
                execution = self._start(context, stored, results_file, lock)
            except BaseException:
                lock.release()
                raise
            known.append(execution)
            return execution

    @staticmethod
    def _results_dir(context: dg.AssetExecutionContext) -> Path:
        return Path(context.instance.storage_directory()) / "mxm_dagster" / "runs"

    def _wants_restatement(self, context: dg.AssetExecutionContext) -> bool:
        return self.restate or context.run.tags.get(RESTATE_TAG, "").lower() in _TRUE

    def _requested_execution_time(self, context: dg.AssetExecutionContext) -> str | None:
        """Run config first: the CLI (`--config-json`), the launchpad and Python reach it; the
        tag is what schedules and sensors set on the runs they request."""
        return self.execution_time or context.run.tags.get(EXECUTION_TIME_TAG) or None

    def _start(
        self,
        context: dg.AssetExecutionContext,
        stored: RunResults,
        results_file: Path,
        run_lock: FileLock,
    ) -> _Execution:
        """Start SQLMesh in a child process, watched by a thread that owns `run_lock` until the
        results are on disk."""
        project = self.project(context)
        asset_keys_by_model = selection.asset_keys_by_model_in_graph(context)
        wanted = selection.models_for_run(context) - stored.considered()
        deferred = selection.deferred_models(context, wanted, asset_keys_by_model)
        window = selection.run_time_window(context)
        request = ExecutionRequest(
            environment=project.environment,
            selected=wanted - deferred,
            restate=self._wants_restatement(context),
            row_counts=self.row_counts,
            window=(to_ms(window[0]), to_ms(window[1])) if window else None,
        )
        if execution_time := self._requested_execution_time(context):
            request.plan_options["execution_time"] = execution_time
        if self.allow_destructive:
            request.plan_options["allow_destructive_models"] = list(self.allow_destructive)
        context.log.info(
            f"Running SQLMesh for {len(request.selected)} selected models in environment "
            f"{project.environment!r} of {project.path}"
            + (f" for {window[0].isoformat()} to {window[1].isoformat()}" if window else "")
            + (f"; {len(deferred)} wait for upstream non-SQLMesh assets" if deferred else "")
        )
        execution = _Execution(request.results_without_models(), set(request.selected))

        order = ChildOrder(project, request, self.lock_timeout_seconds, self.warehouse_wait_seconds)

        def work() -> None:
            error: str | None = None
            try:
                results = run_in_child(order, execution.log, execution.model_ready)
            except ExecutionFailed as exc:
                error = str(exc)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                execution.log(f"SQLMesh execution failed: {error}")
                results = ExecutionResults.not_started(project.environment, request.selected, error)
            try:
                stored.executions.append(results)
                stored.write(results_file)
            finally:
                run_lock.release()
                execution.finish(results)

        execution.thread = threading.Thread(
            target=work, name=f"sqlmesh-{context.run_id[:8]}", daemon=False
        )
        execution.thread.start()
        return execution

    @staticmethod
    def _finalize(
        context: dg.AssetExecutionContext, execution: _Execution, results: ExecutionResults
    ) -> None:
        """Once per execution: records for models evaluated beyond the selection, and a loud
        error if an outcome reported early did not hold."""
        if not execution.claim_finalization():
            return
        asset_keys_by_model = selection.asset_keys_by_model_in_graph(context)
        for outcome in results.models.values():
            key = asset_keys_by_model.get(outcome.model) or built_asset_key_for_model(outcome.model)
            if not outcome.selected and outcome.status is ModelStatus.EVALUATED and key:
                partitions_def = selection.partitions_def_in_graph(context, key)
                if partitions_def is None:
                    context.log_event(events.materialization_for(key, outcome, results))
                    continue
                for record in events.partition_materializations(
                    key, partitions_def, outcome, results
                ):
                    context.log_event(record)
        changed = sorted(
            name
            for name in execution.reported_early()
            if (o := results.outcome(name)) is not None and o.status in _FINAL
        )
        if changed:
            context.log.error(
                f"SQLMesh did not promote {', '.join(changed)} after they were reported "
                "materialized; see the failures of this run"
            )


@dataclass
class _StepOutput:
    """What one asset step yields and logs."""

    events: list[Any]
    failure: dg.Failure | None
    records: list[dg.AssetMaterialization] = field(default_factory=list)
    withheld: str | None = None  # why the step's MaterializeResult is not yielded

    @property
    def materializes(self) -> bool:
        return any(isinstance(e, dg.MaterializeResult) for e in self.events)


def _unfilled_reason(
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
