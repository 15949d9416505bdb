"""Each model's outcome as soon as SQLMesh has written it, while SQLMesh goes on with the rest.

An asset step then reports its model without waiting for the whole execution (ADR 2, 6): SQLMesh
works on one core while Dagster records the steps on the other.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.plan import outcomes
from mxm_dagster.child.recorder import ModelRecord, OutcomeRecorder
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import ModelOutcome, ModelStatus
from mxm_dagster.records.specs import LoadedModels


class EarlyReports:
    """Hears from the recorder of each model whose last batch succeeded (on SQLMesh's worker
    thread) and passes its outcome to `on_model_ready`. `enabled` is off when a second SQLMesh
    call may evaluate a model again; `promoting` is off for `sqlmesh run`, whose views already
    point at the tables it writes. The row counts it takes are kept for the results."""

    def __init__(
        self,
        context: Context,
        loaded: LoadedModels,
        recorder: OutcomeRecorder,
        request: ExecutionRequest,
        on_model_ready: Callable[[ModelOutcome], None] | None,
        enabled: bool,
        promoting: bool,
    ) -> None:
        self.context = context
        self.models = loaded.by_name()
        self.recorder = recorder
        self.request = request
        self.on_model_ready = on_model_ready
        self.enabled = enabled
        self.promoting = promoting
        self.row_counts: dict[str, int | None] = {}
        recorder.on_complete = self._model_completed

    def _model_completed(self, name: str, record: ModelRecord) -> None:
        spec = self.models.get(name)
        if not self.enabled or spec is None or not spec.is_model:
            return
        if any(audit.standalone for audit in spec.audits):
            return  # its standalone audits run after it: report with them, at the end
        table = sqlmesh_api.served_table(record.table, promoted=not self.promoting)
        if self.request.row_counts and table:
            self.row_counts[name] = sqlmesh_api.count_rows(self.context, table)
        if self.on_model_ready is not None:
            outcome = outcomes.model_outcome(
                spec,
                record,
                ModelStatus.EVALUATED,
                name in self.request.selected,
                record.table,
                row_count=self.row_counts.get(name),
                restated=name in self.recorder.restated,
            )
            outcome.reported_before_promotion = self.promoting
            # its intervals are recorded by now: the version the results will carry too
            outcome.data_version = sqlmesh_api.written_data_version(
                self.context, name, record.table
            )
            self.on_model_ready(outcome)
