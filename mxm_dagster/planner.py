"""One SQLMesh execution for a set of selected models, with failure isolation.

SQLMesh promotes nothing when any model of a plan fails. Intervals that succeeded are recorded, so
planning again without the failed models and their descendants promotes the rest without
recomputing them. This module does that loop and turns what the console recorded into outcomes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

from mxm_dagster import sqlmesh_api
from mxm_dagster.console import ModelRecord, OutcomeRecorder
from mxm_dagster.results import AuditOutcome, ExecutionResults, ModelOutcome, ModelStatus
from mxm_dagster.specs import ModelSpec, ProjectSpec


@dataclass
class ExecutionRequest:
    """What a run asks SQLMesh to do."""

    environment: str
    selected: set[str]
    restate: bool = False
    row_counts: bool = True
    plan_options: dict[str, object] = field(default_factory=dict)


def _audit_outcomes(model: ModelSpec, record: ModelRecord | None) -> list[AuditOutcome]:
    """Outcomes only for audits that ran: failures as SQLMesh reported them, the rest as passed."""
    if record is None:
        return []
    failures = list(record.audit_failures)
    outcomes: list[AuditOutcome] = []
    ran = record.audits_run >= len(model.audits) > 0 and record.evaluated_batches > 0
    for audit in model.audits:
        failure = next((f for f in failures if f.name == audit.name), None)
        if failure is not None:
            failures.remove(failure)
            outcomes.append(
                AuditOutcome(
                    name=audit.name,
                    passed=False,
                    blocking=audit.blocking and failure.blocking,
                    failed_rows=failure.failed_rows,
                    query=failure.query,
                    check_name=audit.check_name,
                )
            )
        elif ran:
            outcomes.append(
                AuditOutcome(audit.name, True, audit.blocking, check_name=audit.check_name)
            )
    return outcomes


class Planner:
    """Runs plans against an open SQLMesh Context until every model that can succeed is promoted."""

    def __init__(
        self,
        context: sqlmesh_api.Context,
        project: ProjectSpec,
        recorder: OutcomeRecorder,
    ) -> None:
        self.context = context
        self.project = project
        self.models = project.by_name()
        self.recorder = recorder

    def _is_model(self, name: str) -> bool:
        spec = self.models.get(name)
        return spec is not None and not spec.is_external

    def required_models(self, environment: str, selected: Collection[str]) -> set[str]:
        """The selection plus upstream models missing from the environment (SQLMesh needs them)."""
        deployed = sqlmesh_api.environment_model_names(self.context, environment)
        missing_upstream = {
            name
            for name in sqlmesh_api.upstream(self.context, selected)
            if self._is_model(name) and name not in deployed
        }
        return {n for n in selected if self._is_model(n)} | missing_upstream

    def execute(self, request: ExecutionRequest) -> ExecutionResults:
        started = time.time()
        planned = self.required_models(request.environment, request.selected)
        excluded: dict[str, str] = {}  # model -> the failed model it descends from
        attempts = 0
        restate = set(request.selected) if request.restate else set()
        while planned:
            attempts += 1
            try:
                sqlmesh_api.apply_plan(
                    self.context,
                    request.environment,
                    select_models=sorted(planned),
                    restate_models=sorted(restate & planned),
                    **request.plan_options,  # type: ignore[arg-type]
                )
                break
            except Exception as exc:
                failed = self.recorder.failed_models() & planned
                if not sqlmesh_api.is_plan_failure(exc) or not failed:
                    raise
                self.recorder.message(
                    f"Plan application failed for {', '.join(sorted(failed))}; promoting the "
                    "models that succeeded without them and their downstream models"
                )
                for name in failed:
                    excluded.setdefault(name, name)
                    for child in sqlmesh_api.downstream(self.context, [name]):
                        excluded.setdefault(child, name)
                planned -= set(excluded)
                restate = set()  # what succeeded is recorded; a retry must not recompute it
        return self._results(request, planned | set(excluded), excluded, started, attempts)

    def _results(
        self,
        request: ExecutionRequest,
        involved: set[str],
        excluded: dict[str, str],
        started: float,
        attempts: int,
    ) -> ExecutionResults:
        records = self.recorder.records
        evaluated_elsewhere = {
            n for n, r in records.items() if r.evaluated_batches and self._is_model(n)
        }
        tables = sqlmesh_api.promoted_tables(self.context, request.environment)
        outcomes: dict[str, ModelOutcome] = {}
        for name in sorted(involved | evaluated_elsewhere | (request.selected & set(self.models))):
            if not self._is_model(name):
                continue
            record = records.get(name)
            if record is not None and record.error is not None:
                status = ModelStatus.FAILED
            elif name in excluded:
                status = ModelStatus.SKIPPED
            elif record is not None and record.evaluated_batches:
                status = ModelStatus.EVALUATED
            else:
                status = ModelStatus.UP_TO_DATE
            table = tables.get(name, {}) if status in _PROMOTED else {}
            outcome = ModelOutcome(
                model=name,
                status=status,
                selected=name in request.selected,
                error=record.error if record else None,
                failed_upstream=excluded.get(name) if status is ModelStatus.SKIPPED else None,
                audits=_audit_outcomes(self.models[name], record),
                intervals=list(record.intervals) if record else [],
                duration_ms=record.duration_ms if record and record.evaluated_batches else None,
                **table,
            )
            if request.row_counts and status is ModelStatus.EVALUATED and outcome.view:
                outcome.row_count = sqlmesh_api.count_rows(self.context, outcome.view)
            outcomes[name] = outcome
        return ExecutionResults(
            execution_id=uuid.uuid4().hex,
            environment=request.environment,
            models=outcomes,
            started_at=started,
            finished_at=time.time(),
            plan_attempts=attempts,
            restated=request.restate,
        )


_PROMOTED = {ModelStatus.EVALUATED, ModelStatus.UP_TO_DATE}
