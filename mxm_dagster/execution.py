"""`SQLMeshResultsResource`: SQLMesh once per Dagster run, each asset step reporting its own model.

The first asset step of a run to arrive runs SQLMesh for the run's whole selection and stores the
results in the instance's storage directory; every other step (in this process or another one)
reads its model's outcome from there. A per-run file lock makes "first" hold across step processes;
a per-project file lock makes runs that write the same warehouse take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mxm_dagster import events, selection
from mxm_dagster.console import OutcomeRecorder
from mxm_dagster.loader import PROJECT_TAG, asset_key_for_model
from mxm_dagster.locks import file_lock
from mxm_dagster.planner import ExecutionRequest, Planner
from mxm_dagster.project import SQLMeshProject
from mxm_dagster.results import ExecutionResults, ModelStatus, RunResults
from mxm_dagster.sqlmesh_api import close_context
from mxm_dagster.warehouse import wait_until_writable

RESTATE_TAG = "mxm/restate"
_TRUE = {"1", "true", "yes"}

_process_lock = threading.Lock()
_results_by_run: dict[str, RunResults] = {}


class SQLMeshResultsResource(dg.ConfigurableResource):
    """Runs SQLMesh once per Dagster run and hands each asset step its model's outcome."""

    project_dir: str | None = Field(
        default=None,
        description="SQLMesh project folder; default MXM_SQLMESH_PROJECT",
    )
    gateway: str | None = Field(default=None, description="SQLMesh gateway; default the project's")
    environment: str | None = Field(
        default=None, description="SQLMesh environment; default MXM_SQLMESH_ENVIRONMENT or prod"
    )
    restate: bool = Field(
        default=False,
        description=f"Recompute the selected models' intervals (also: run tag {RESTATE_TAG}=true)",
    )
    row_counts: bool = Field(default=True, description="Count rows of evaluated models")
    lock_timeout_seconds: float = Field(
        default=1800, description="How long a run waits for another run of the same project"
    )
    warehouse_wait_seconds: float = Field(
        default=30, description="How long a run waits for a DuckDB warehouse another process holds"
    )

    def project(self, context: dg.AssetExecutionContext) -> SQLMeshProject:
        """The project this step's assets were built from, unless the config names another."""
        base = SQLMeshProject.from_env()
        project_dir = self.project_dir or context.op_def.tags.get(PROJECT_TAG)
        return SQLMeshProject(
            path=Path(project_dir).resolve() if project_dir else base.path,
            gateway=self.gateway or base.gateway,
            environment=self.environment or base.environment,
        )

    # ------------------------------------------------------------------ per step

    def report_model(self, context: dg.AssetExecutionContext, model: str) -> Iterator[Any]:
        """All that the step of `model` yields: materialization, check results or failure."""
        found = self.results_for_run(context, model).find(model)
        if found is None:
            raise dg.Failure(
                description=f"SQLMesh did not consider {model} in this run: it is not part of the "
                "run's selection"
            )
        yield from events.step_events(*found, selected_checks=context.selected_asset_check_keys)

    # ------------------------------------------------------------------ per run

    def results_for_run(self, context: dg.AssetExecutionContext, model: str) -> RunResults:
        """The run's SQLMesh results, executing SQLMesh if this step is the first to need them."""
        run_id = context.run_id
        with _process_lock:
            cached = _results_by_run.get(run_id)
            if cached is not None and cached.find(model):
                return cached
            results_file = self._results_dir(context) / f"{run_id}.json"
            with file_lock(
                results_file.with_suffix(".lock"),
                timeout_seconds=self.lock_timeout_seconds,
                on_wait=context.log.info,
                what="run's SQLMesh execution",
            ):
                results = RunResults.read(results_file) if results_file.is_file() else RunResults()
                if results.find(model) is None:
                    results.executions.append(self._execute_or_fail(context, results.considered()))
                    results.write(results_file)
            _results_by_run[run_id] = results
            return results

    @staticmethod
    def _results_dir(context: dg.AssetExecutionContext) -> Path:
        return Path(context.instance.storage_directory()) / "mxm_dagster" / "runs"

    def _wants_restatement(self, context: dg.AssetExecutionContext) -> bool:
        return self.restate or context.run.tags.get(RESTATE_TAG, "").lower() in _TRUE

    def _execute_or_fail(
        self, context: dg.AssetExecutionContext, done: set[str]
    ) -> ExecutionResults:
        """Run SQLMesh; if it cannot even start, record that for every model of the run, so the
        other steps fail with the same message instead of trying again."""
        keys_by_model = selection.model_keys(context)
        wanted = selection.models_for_run(context) - done
        deferred = selection.deferred_models(context, wanted, keys_by_model)
        try:
            return self._execute(context, wanted - deferred, deferred, keys_by_model)
        except Exception as exc:
            context.log.error(f"SQLMesh execution failed: {exc}")
            return ExecutionResults.not_started(
                self.project(context).environment, wanted - deferred, f"{type(exc).__name__}: {exc}"
            )

    def _execute(
        self,
        context: dg.AssetExecutionContext,
        selected: set[str],
        deferred: set[str],
        keys_by_model: dict[str, dg.AssetKey],
    ) -> ExecutionResults:
        project = self.project(context)
        spec = project.load_spec()  # from the cache the code server wrote
        context.log.info(
            f"Running SQLMesh for {len(selected)} selected models in environment "
            f"{project.environment!r} of {project.path}"
            + (f"; {len(deferred)} wait for upstream non-SQLMesh assets" if deferred else "")
        )
        request = ExecutionRequest(
            environment=project.environment,
            selected=selected,
            restate=self._wants_restatement(context),
            row_counts=self.row_counts,
        )
        recorder = OutcomeRecorder(log=context.log.info)
        with file_lock(
            project.lock_path,
            timeout_seconds=self.lock_timeout_seconds,
            on_wait=context.log.info,
            what="SQLMesh project lock",
        ):
            if project.warehouse_path is not None:
                wait_until_writable(
                    project.warehouse_path, self.warehouse_wait_seconds, context.log.info
                )
            sqlmesh_context = project.open_context(recorder)
            try:
                results = Planner(sqlmesh_context, spec, recorder).execute(request)
            finally:
                close_context(sqlmesh_context)
        self._record_unselected(context, results, keys_by_model)
        return results

    @staticmethod
    def _record_unselected(
        context: dg.AssetExecutionContext,
        results: ExecutionResults,
        keys_by_model: dict[str, dg.AssetKey],
    ) -> None:
        """Nothing is evaluated without a record: models SQLMesh evaluated beyond the selection."""
        for outcome in results.models.values():
            key = keys_by_model.get(outcome.model) or asset_key_for_model(outcome.model)
            if not outcome.selected and outcome.status is ModelStatus.EVALUATED and key:
                context.log_event(events.materialization_for(key, outcome, results))
