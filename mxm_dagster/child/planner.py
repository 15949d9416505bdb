"""One SQLMesh execution for a set of selected models, with failure isolation.

SQLMesh promotes nothing when any model of a plan fails. Intervals that succeeded are recorded, so
planning again without the failed models and their descendants promotes the rest without
recomputing them. This module does that loop and turns what the console recorded into outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.recorder import ModelRecord, OutcomeRecorder
from mxm_dagster.common.errors import DestructiveChangeError
from mxm_dagster.common.times import iso_from_ms
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import (
    AuditOutcome,
    ExecutionResults,
    ModelOutcome,
    ModelStatus,
    TableInfo,
)
from mxm_dagster.records.specs import AuditSpec, ModelSpec, ProjectSpec


def _audits_ran(model: ModelSpec, record: ModelRecord, audit: AuditSpec) -> bool:
    """Whether SQLMesh ran every audit of the node in at least one batch.

    SQLMesh reports per batch only how many audits passed and failed; it runs all of a node's
    audits in each batch (a `skip` audit counts as passed), then raises if a blocking one failed.
    So a batch whose count equals the node's audits, or that stopped on a blocking failure, ran
    each of them. Any other count says too little to claim a pass.
    """
    if record.unheard_failures:  # some failure was counted but not named: any audit may be it
        return False
    expected = 1 if audit.standalone else sum(1 for a in model.audits if not a.standalone)
    return record.audits_blocked or expected in record.audit_counts


def _failure(audit: AuditSpec, failures: list[AuditOutcome]) -> AuditOutcome:
    """One audit's failures over every batch: rows added up, the first batch's query."""
    return AuditOutcome(
        name=audit.name,
        passed=False,
        blocking=audit.blocking and any(f.blocking for f in failures),
        failed_rows=sum(f.failed_rows for f in failures),
        query=failures[0].query,
        check_name=audit.check_name,
        failed_batches=sum(max(f.failed_batches, 1) for f in failures),
    )


def _check_of(model: ModelSpec, failure: AuditOutcome) -> str:
    """The check a failure belongs to; one SQLMesh named only by audit goes to its first use."""
    if failure.check_name:
        return failure.check_name
    return next((a.check_name for a in model.audits if a.name == failure.name), failure.name)


def _audit_outcomes(
    model: ModelSpec,
    record: ModelRecord | None,
    records: Mapping[str, ModelRecord],
    log: Callable[[str], None] | None = None,
) -> list[AuditOutcome]:
    """Outcomes only for audits that ran: failures as SQLMesh reported them, passes only where
    SQLMesh's counts show the audit ran (see `_audits_ran`). `skip` audits never run."""
    outcomes: list[AuditOutcome] = []
    unproven: list[str] = []
    for audit in model.audits:
        source = records.get(audit.name) if audit.standalone else record
        if audit.skip or source is None:
            continue
        failures = [
            f
            for f in source.audit_failures
            if audit.standalone or _check_of(model, f) == audit.check_name
        ]
        if failures:
            outcomes.append(_failure(audit, failures))
        elif _audits_ran(model, source, audit):
            outcomes.append(
                AuditOutcome(audit.name, True, audit.blocking, check_name=audit.check_name)
            )
        elif source.audit_counts and not source.unheard_failures:  # that one is logged already
            counts = sorted(set(source.audit_counts))
            unproven.append(f"{audit.check_name} (SQLMesh counted {counts} audits per batch)")
    if unproven and log is not None:
        log(
            f"Not reporting {', '.join(unproven)} of {model.name} as passed: its node declares "
            "a different number of audits, so which of them ran is unknown"
        )
    return outcomes


def model_outcome(
    spec: ModelSpec,
    record: ModelRecord | None,
    status: ModelStatus,
    selected: bool,
    table: TableInfo,
    failed_upstream: str | None = None,
    row_count: int | None = None,
    records: Mapping[str, ModelRecord] | None = None,
    log: Callable[[str], None] | None = None,
) -> ModelOutcome:
    """`records` holds what the console recorded of every node: standalone audits are nodes."""
    return ModelOutcome(
        model=spec.name,
        status=status,
        selected=selected,
        error=record.error if record else None,
        failed_upstream=failed_upstream,
        audits=_audit_outcomes(spec, record, records or {}, log),
        intervals=list(record.intervals) if record else [],
        duration_ms=record.duration_ms if record and record.evaluated_batches else None,
        row_count=row_count,
        **table,
    )


class Planner:
    """Runs plans against an open SQLMesh Context until every model that can succeed is promoted.

    `on_model_ready` hears of each model whose evaluation is complete while SQLMesh goes on with
    the rest, so its asset step can report without waiting for the whole execution.
    """

    def __init__(
        self,
        context: Context,
        project: ProjectSpec,
        recorder: OutcomeRecorder,
        on_model_ready: Callable[[ModelOutcome], None] | None = None,
        load_models: Callable[[], None] = lambda: None,
    ) -> None:
        """`load_models` loads the model files into `context` when a plan needs them; running
        works from SQLMesh's state alone, so a run never reads the project."""
        self.context = context
        self.load_models = load_models
        self.project = project
        self.models = project.by_name()
        self.all_models = {name for name, spec in self.models.items() if spec.is_model}
        self.recorder = recorder
        self.on_model_ready = on_model_ready
        self.row_counts: dict[str, int | None] = {}
        self.serving_plan_id: str | None = None  # set when the environment serves the project
        self._request: ExecutionRequest | None = None
        self._promoting = True
        self._report_early = True  # off when a second SQLMesh call may evaluate a model again
        recorder.on_complete = self._model_completed
        recorder.owners = project.standalone_audits()

    def _model_completed(self, name: str, record: ModelRecord) -> None:
        """Runs on SQLMesh's worker thread right after the model's last batch succeeded."""
        request = self._request
        if request is None or not self._report_early or not self._is_model(name):
            return
        if any(audit.standalone for audit in self.models[name].audits):
            return  # its standalone audits run after it: report with them, at the end
        table = record.table.get("physical_table")
        if request.row_counts and table:
            self.row_counts[name] = sqlmesh_api.count_rows(self.context, table)
        if self.on_model_ready is not None:
            outcome = model_outcome(
                self.models[name],
                record,
                ModelStatus.EVALUATED,
                name in request.selected,
                record.table,
                row_count=self.row_counts.get(name),
            )
            outcome.reported_before_promotion = self._promoting
            self.on_model_ready(outcome)

    def _is_model(self, name: str) -> bool:
        spec = self.models.get(name)
        return spec is not None and spec.is_model

    def required_models(self, deployed: Collection[str], selected: Collection[str]) -> set[str]:
        """The selection plus the upstream models missing from the environment (`deployed`),
        which SQLMesh needs with it. EMBEDDED and EXTERNAL ones count: an EMBEDDED model left out
        of a plan's selection is not inlined, and its readers fail ("Table ... does not exist",
        measured)."""
        missing_upstream = {
            name for name in sqlmesh_api.upstream(self.context, selected) if name not in deployed
        }
        return {n for n in selected if self._is_model(n)} | missing_upstream

    def execute(
        self, request: ExecutionRequest, known_plan_id: str | None = None
    ) -> ExecutionResults:
        """Plan (and re-plan without failures) or, when `known_plan_id` says the environment
        already serves this project unchanged, run: same intervals, no fingerprinting.

        Either way SQLMesh fills what each model's cron made due as of one execution time, fixed
        here so that the check of what is still due refers to the same moment (docs/adr/0007)."""
        self._request = request
        clock = sqlmesh_api.execution_timestamp()
        if request.may_run_without_plan and known_plan_id is not None:
            if sqlmesh_api.finalized_plan_id(self.context, request.environment) == known_plan_id:
                options = self._plan_options(request, False, clock)
                return self._run(request, known_plan_id, options["execution_time"])
        self.load_models()
        deployed = sqlmesh_api.environment_model_names(self.context, request.environment)
        planned = self.required_models(deployed, request.selected)
        excluded: dict[str, str] = {}  # model -> the failed model it descends from
        attempts = 0
        restate = self._restatable(request, deployed)
        restating: list[str] = []
        options = self._plan_options(request, bool(restate), clock)
        # Plans that would lose work with `run=True` plan without it and run what is due after
        # (`_fill_due`); a model may then be evaluated twice, so none is reported early.
        fill_after = request.runs_due and (
            bool(restate)
            or sqlmesh_api.has_metadata_only_changes(self.context, request.environment)
        )
        self._report_early = not fill_after
        while planned:
            attempts += 1
            try:
                restating = sorted(restate & planned)
                options = self._plan_options(request, bool(restating), clock)
                sqlmesh_api.apply_plan(
                    self.context,
                    request.environment,
                    # every model: no selection, which SQLMesh also plans fastest
                    select_models=None if planned >= self.all_models else sorted(planned),
                    restate_models=restating,
                    run=request.runs_due and not fill_after,
                    **options,  # type: ignore[arg-type]
                )
                break
            except Exception as exc:
                if sqlmesh_api.is_destructive_refusal(exc):
                    raise self._destructive_error(request, exc) from exc
                failed = self.recorder.failed_models() & planned
                if not sqlmesh_api.is_plan_failure(exc) or not failed:
                    raise
                self.recorder.message(
                    f"Plan application failed for {', '.join(sorted(failed))}; promoting the "
                    "models that succeeded without them and their downstream models"
                )
                for name in failed:
                    excluded.setdefault(name, name)
                    for child in self.project.downstream(name):
                        excluded.setdefault(child, name)
                planned -= set(excluded)
                restate = set()  # what succeeded is recorded; a retry must not recompute it
        if not excluded and (
            planned >= self.all_models  # a plan of every model deploys the project as it is
            or sqlmesh_api.serves_project(self.context, request.environment)
        ):
            self.serving_plan_id = sqlmesh_api.finalized_plan_id(self.context, request.environment)
        execution_time = sqlmesh_api.execution_timestamp(options["execution_time"])
        if fill_after:
            models = {n for n in planned if self._is_model(n)}
            for child, failed in self._fill_due(request, models, execution_time).items():
                excluded.setdefault(child, failed)
        if fill_after or not planned >= self.all_models:  # a selection: no standalone audits
            done = planned - set(excluded)
            present = (set(deployed) | done) - set(excluded)
            self._run_standalone_audits(request, done, present, options)
        return self._results(request, planned | set(excluded), excluded, attempts, execution_time)

    def _restatable(self, request: ExecutionRequest, deployed: Collection[str]) -> set[str]:
        """The selected models a restatement can recompute: those the environment has. SQLMesh
        refuses to restate in an environment that does not exist yet ("must exist for this
        operation"); a model not deployed has nothing to recompute and is simply built."""
        if not request.restate:
            return set()
        new = sorted(n for n in request.selected if self._is_model(n) and n not in deployed)
        if new:
            self.recorder.message(
                f"Not restating {', '.join(new)}: environment {request.environment!r} has no "
                "version of them yet, so they are built instead"
            )
        return {n for n in request.selected if n in deployed}

    @staticmethod
    def _plan_options(request: ExecutionRequest, restating: bool, clock: int) -> dict[str, Any]:
        """An explicit option (the execution-time tag) wins over the window's default, and the
        execution time is fixed (to `clock` unless given) so that the check of what is still due
        refers to the moment SQLMesh filled as of."""
        options: dict[str, Any] = {**request.plan_window(restating), **request.plan_options}
        options.setdefault("execution_time", clock)
        return options

    def _run(
        self, request: ExecutionRequest, plan_id: str, execution_time: Any
    ) -> ExecutionResults:
        """`sqlmesh run` for the selection: views already point at the tables it writes."""
        self._promoting = False
        selected = {n for n in request.selected if self._is_model(n)}
        sqlmesh_api.run_models(
            self.context,
            request.environment,
            select_models=None if selected >= self.all_models else sorted(selected),
            execution_time=execution_time,
        )
        excluded = self._downstream_of_failures(selected)
        if not selected >= self.all_models:  # a selection: no standalone audits
            options = {"execution_time": execution_time}
            self._run_standalone_audits(request, selected, self.all_models, options)
        self.serving_plan_id = plan_id
        as_of = sqlmesh_api.execution_timestamp(execution_time)
        results = self._results(request, selected | set(excluded), excluded, 1, as_of)
        results.command = "run"
        return results

    def _run_standalone_audits(
        self,
        request: ExecutionRequest,
        models: Collection[str],
        present: Collection[str],
        options: Mapping[str, Any],
    ) -> None:
        """Run, after SQLMesh's plan or run with a selection, the standalone audits it left out
        (SQLMesh 0.236 selects models only: `sqlmesh_api.run_standalone_audits`): those whose
        check is on a selected model of `models` and whose models are all in the environment
        (`present`) and did not fail, as SQLMesh would have without a selection."""
        usable = set(present) - self.recorder.failed_models()
        audits = [
            audit.name
            for name in sorted(request.selected & set(models))
            if self._is_model(name)
            for audit in self.models[name].audits
            if audit.standalone and {name, *audit.reads} <= usable
        ]
        if audits:
            sqlmesh_api.run_standalone_audits(
                self.context,
                request.environment,
                audits,
                options["execution_time"],
                options.get("start"),
                options.get("end"),
            )

    def _fill_due(
        self, request: ExecutionRequest, models: set[str], execution_time: int
    ) -> dict[str, str]:
        """Run what is still due after a plan without `run`. SQLMesh 0.236 loses work in two
        plans with `run=True`: restating a model without `start` clears the model's interval and
        refills nothing, and an audit-only change is not audited (measured, docs/adr/0007).
        Returns the models to skip below failures."""
        due = sqlmesh_api.due_intervals(self.context, request.environment, models, execution_time)
        behind = sorted(name for name, state in due.items() if state.missing)
        if not behind:
            return {}
        sqlmesh_api.run_models(self.context, request.environment, behind, execution_time)
        return self._downstream_of_failures(models)

    def _downstream_of_failures(self, models: set[str]) -> dict[str, str]:
        """Models of `models` below a model that failed: SQLMesh did not evaluate them."""
        return {
            child: failed
            for failed in self.recorder.failed_models()
            for child in self.project.downstream(failed) & models
        }

    def _destructive_error(
        self, request: ExecutionRequest, exc: BaseException
    ) -> DestructiveChangeError:
        """SQLMesh says so while planning (console) or while migrating the table (the error)."""
        changes = dict(self.recorder.destructive_changes)
        for model in sqlmesh_api.destructive_models(exc):
            changes.setdefault(model, "")
        models = ", ".join(sorted(changes)) or "a forward-only model"
        details = "\n".join(v for v in changes.values() if v) or str(exc).strip()
        return DestructiveChangeError(
            f"SQLMesh refused a destructive change to {models} in environment "
            f"{request.environment!r}: applying it would drop data of a forward-only model. "
            "Nothing was changed. To allow it, set the resource config `allow_destructive` to "
            f"the model names (e.g. {sorted(changes) or ['<model>']}) or ['*'], or revert the "
            f"change.\n{details}".rstrip()
        )

    def _results(
        self,
        request: ExecutionRequest,
        involved: set[str],
        excluded: dict[str, str],
        attempts: int,
        execution_time: int,
    ) -> ExecutionResults:
        records = self.recorder.records
        evaluated_elsewhere = {
            n for n, r in records.items() if r.evaluated_batches and self._is_model(n)
        }
        tables = sqlmesh_api.promoted_tables(self.context, request.environment)
        names = involved | evaluated_elsewhere | (request.selected & set(self.models))
        statuses = {
            name: _status(records.get(name), name in excluded)
            for name in sorted(names)
            if self._is_model(name)
        }
        unevaluated = [n for n, status in statuses.items() if status is ModelStatus.UP_TO_DATE]
        reasons = self._unfilled_reasons(request, unevaluated, execution_time)
        outcomes: dict[str, ModelOutcome] = {}
        for name, status in statuses.items():
            record = records.get(name)
            if name in reasons:
                status = ModelStatus.NOT_FILLED
            table = tables.get(name, TableInfo()) if status in _PROMOTED else TableInfo()
            physical = table.get("physical_table")
            wants_count = request.row_counts and status is ModelStatus.EVALUATED and physical
            if wants_count and name not in self.row_counts:
                self.row_counts[name] = sqlmesh_api.count_rows(self.context, physical)
            outcome = model_outcome(
                self.models[name],
                record,
                status,
                name in request.selected,
                table,
                failed_upstream=excluded.get(name) if status is ModelStatus.SKIPPED else None,
                row_count=self.row_counts.get(name) if status is ModelStatus.EVALUATED else None,
                records=records,
                log=self.recorder.message,
            )
            outcome.reason = reasons.get(name)
            outcomes[name] = outcome
        results = request.results_without_models()
        results.models = outcomes
        results.finished_at = time.time()
        results.plan_attempts = attempts
        results.execution_time = execution_time
        return results

    def _unfilled_reasons(
        self, request: ExecutionRequest, names: Collection[str], execution_time: int
    ) -> dict[str, str]:
        """Why each of `names` SQLMesh did not evaluate still misses intervals due by its cron
        (none for a model that is up to date), from the environment SQLMesh just left."""
        if not names:
            return {}
        parents = {p for n in names for p in self.models[n].depends_on if self._is_model(p)}
        start, end = request.window or (None, None)
        due = sqlmesh_api.due_intervals(
            self.context, request.environment, set(names) | parents, execution_time, start, end
        )
        reasons = {name: unfilled_reason(name, due, request.environment) for name in names}
        return {name: reason for name, reason in reasons.items() if reason is not None}


def _status(record: ModelRecord | None, excluded: bool) -> ModelStatus:
    """What SQLMesh did with a model in this execution, before checking what is still due."""
    if record is not None and record.error is not None:
        return ModelStatus.FAILED
    if excluded:
        return ModelStatus.SKIPPED
    if record is not None and record.evaluated_batches:
        return ModelStatus.EVALUATED
    if record is not None and record.audited_batches:
        return ModelStatus.AUDITED
    return ModelStatus.UP_TO_DATE


def unfilled_reason(
    name: str, due: dict[str, sqlmesh_api.DueIntervals], environment: str
) -> str | None:
    """Why SQLMesh left intervals of `name` due and missing, as precisely as its state tells;
    None when nothing due is missing (intervals not due yet leave a model up to date)."""
    state = due.get(name)
    if state is None:
        return f"SQLMesh's environment {environment!r} holds no version of this model"
    reasons: list[str] = []
    if state.missing:
        waiting_on = [p for p in state.parents if p in due and due[p].missing]
        if waiting_on:
            reasons.append(
                f"waiting on upstream {', '.join(waiting_on)}, which SQLMesh has not filled "
                "for the same intervals"
            )
        if state.signals:
            reasons.append(
                f"waiting on signal {', '.join(state.signals)}: it did not report "
                f"{_span(state.missing)} ready"
            )
        if not reasons:
            reasons.append(f"SQLMesh left {_span(state.missing)} unfilled without an error")
    if state.past_end:
        reasons.append(
            f"past its end: the model ends at {iso_from_ms(state.end or 0)}, and SQLMesh fills no "
            f"interval after it (its cron made intervals due up to {iso_from_ms(state.due_until)})"
        )
    return "; ".join(reasons) or None


def _span(intervals: Collection[tuple[int, int]]) -> str:
    """Missing intervals in a few words: how many, from where to where."""
    first, last = min(a for a, _ in intervals), max(b for _, b in intervals)
    count = len(intervals)
    span = f"[{iso_from_ms(first)}, {iso_from_ms(last)})"
    return f"{count} due interval{'s' if count > 1 else ''} {span}"


_PROMOTED = {
    ModelStatus.EVALUATED,
    ModelStatus.UP_TO_DATE,
    ModelStatus.AUDITED,
    ModelStatus.NOT_FILLED,
}
