"""Carries out a decision against an open SQLMesh Context, with failure isolation.

SQLMesh promotes nothing when any model of a plan fails. Intervals that succeeded are recorded, so
planning again without the failed models and their descendants promotes the rest without
recomputing them. This module makes those SQLMesh calls; what to call is `decision`'s, and what
the console recorded becomes outcomes in `outcomes`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.plan import outcomes
from mxm_dagster.child.plan.decision import (
    Decision,
    decide_plan,
    decide_run,
    held_back,
    plan_options,
    replan,
)
from mxm_dagster.child.recorder import ModelRecord, OutcomeRecorder
from mxm_dagster.common.errors import DestructiveChangeError
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus
from mxm_dagster.records.specs import LoadedModels


def plan_decision(
    context: Context, request: ExecutionRequest, models: Collection[str], clock: int
) -> tuple[Decision, set[str]]:
    """The plan a run makes of `request` (its first one) on a Context with the project loaded,
    and the models the environment has: what the evaluator applies and a preview builds."""
    environment = request.environment
    deployed = sqlmesh_api.environment_model_names(context, environment)
    decision = decide_plan(
        request,
        models,
        deployed,
        sqlmesh_api.upstream(context, request.selected),
        lambda: sqlmesh_api.has_metadata_only_changes(context, environment),
        clock,
        lambda names: sqlmesh_api.downstream(context, environment, names),
    )
    return decision, deployed


class PlanEvaluator:
    """Runs plans against an open SQLMesh Context until every model that can succeed is promoted.

    `on_model_ready` hears of each model whose evaluation is complete while SQLMesh goes on with
    the rest, so its asset step can report without waiting for the whole execution.
    """

    def __init__(
        self,
        context: Context,
        loaded: LoadedModels,
        recorder: OutcomeRecorder,
        on_model_ready: Callable[[ModelOutcome], None] | None = None,
        load_models: Callable[[], None] = lambda: None,
    ) -> None:
        """`load_models` loads the model files into `context` when a plan needs them; running
        works from SQLMesh's state alone, so a run never reads the project."""
        self.context = context
        self.load_models = load_models
        self.loaded = loaded
        self.models = loaded.by_name()
        self.all_models = {name for name, spec in self.models.items() if spec.is_model}
        self.recorder = recorder
        self.on_model_ready = on_model_ready
        self.row_counts: dict[str, int | None] = {}
        self.serving_plan_id: str | None = None  # set when the environment serves the project
        #: evaluated but left out of the re-plan with the failed model that holds them back
        self.held_back: dict[str, str] = {}
        self._request: ExecutionRequest | None = None
        self._promoting = True
        self._report_early = True  # off when a second SQLMesh call may evaluate a model again
        recorder.on_complete = self._model_completed
        recorder.owners = loaded.standalone_audits()

    def _model_completed(self, name: str, record: ModelRecord) -> None:
        """Runs on SQLMesh's worker thread right after the model's last batch succeeded."""
        request = self._request
        if request is None or not self._report_early or not self._is_model(name):
            return
        if any(audit.standalone for audit in self.models[name].audits):
            return  # its standalone audits run after it: report with them, at the end
        table = sqlmesh_api.served_table(record.table, promoted=not self._promoting)
        if request.row_counts and table:
            self.row_counts[name] = sqlmesh_api.count_rows(self.context, table)
        if self.on_model_ready is not None:
            outcome = outcomes.model_outcome(
                self.models[name],
                record,
                ModelStatus.EVALUATED,
                name in request.selected,
                record.table,
                row_count=self.row_counts.get(name),
                restated=name in self.recorder.restated,
            )
            outcome.reported_before_promotion = self._promoting
            # its intervals are recorded by now: the version the results will carry too
            outcome.data_version = sqlmesh_api.written_data_version(
                self.context, name, record.table
            )
            self.on_model_ready(outcome)

    def _is_model(self, name: str) -> bool:
        spec = self.models.get(name)
        return spec is not None and spec.is_model

    def execute(
        self, request: ExecutionRequest, known_plan_id: str | None = None
    ) -> ExecutionResults:
        """Plan (and re-plan without failures) or, when `known_plan_id` says the environment
        already serves this project unchanged, run: same intervals, no fingerprinting.

        Either way SQLMesh fills what each model's cron made due as of one execution time, fixed
        here so that the check of what is still due refers to the same moment (docs/adr/0007).
        A run is decided from SQLMesh's state alone, before the project's files are loaded."""
        self._request = request
        clock = sqlmesh_api.execution_timestamp()
        environment = request.environment
        if not request.selected and request.checks_only:
            return self._audit_alone(request, clock)
        run = decide_run(
            request,
            known_plan_id,
            lambda: sqlmesh_api.finalized_plan_id(self.context, environment),
            self.all_models,
            clock,
        )
        if run is not None:
            return self._run(request, run)
        self.load_models()
        decision, deployed = plan_decision(self.context, request, self.all_models, clock)
        return self._plan(request, decision, clock, deployed)

    def _plan(
        self, request: ExecutionRequest, decision: Decision, clock: int, deployed: Collection[str]
    ) -> ExecutionResults:
        """Apply the plan; when models fail, plan again without them and their descendants."""
        for message in decision.messages:
            self.recorder.message(message)
        self._report_early = decision.report_early
        excluded: dict[str, str] = {}  # model -> the failed model it descends from
        restated_first = bool(decision.restate)  # a re-plan restates nothing, but the first did
        attempts = 0
        while decision.models:
            attempts += 1
            try:
                sqlmesh_api.apply_plan(
                    self.context,
                    request.environment,
                    select_models=decision.select_models,
                    restate_models=decision.restate,
                    run=decision.run_due,
                    backfill_models=decision.backfill_models,
                    **decision.options,  # type: ignore[arg-type]
                )
                break
            except Exception as exc:
                refused = sqlmesh_api.destructive_refusal(exc, self.recorder.destructive_changes)
                if refused is not None:
                    raise self._destructive_error(request, exc, refused) from exc
                failed = self.recorder.failed_models() & decision.models
                if not sqlmesh_api.is_plan_failure(exc) or not failed:
                    raise
                self.recorder.message(
                    f"Plan application failed for {', '.join(sorted(failed))}; promoting the "
                    "models that succeeded without them and their downstream models"
                )
                for name in failed:
                    excluded.setdefault(name, name)
                    for child in self.loaded.downstream(name):
                        excluded.setdefault(child, name)
                self._hold_back(request, decision, excluded, deployed)
                decision = replan(decision, excluded, request, self.all_models, clock)
        planned = set(decision.models)
        # A plan of every model deploys the project as it is, unless it restates: SQLMesh plans
        # a restatement from its state and ignores local edits, so ask the environment then
        if not excluded and (
            (planned >= self.all_models and not restated_first)
            or sqlmesh_api.serves_project(self.context, request.environment)
        ):
            self.serving_plan_id = sqlmesh_api.finalized_plan_id(self.context, request.environment)
        execution_time = sqlmesh_api.execution_timestamp(decision.execution_time)
        if decision.fill_after:
            models = {n for n in planned if self._is_model(n)}
            for child, failed in self._fill_due(request, models, execution_time).items():
                excluded.setdefault(child, failed)
        if decision.fill_after or not planned >= self.all_models:  # a selection: see below
            done = planned - set(excluded)
            present = (set(deployed) | done) - set(excluded)
            # SQLMesh audits what it restated below the selection as it audits the selection
            audited = request.selected | decision.below_restated
            self._run_standalone_audits(request, done, present, decision.options, audited)
        return self._results(request, planned | set(excluded), excluded, attempts, execution_time)

    def _hold_back(
        self,
        request: ExecutionRequest,
        decision: Decision,
        excluded: dict[str, str],
        deployed: Collection[str],
    ) -> None:
        """Leave out of the re-plan, besides `excluded`, what SQLMesh cannot promote without
        them: the models changed in this execution above a left-out deployed model (decision's
        `held_back`); their new versions stay recorded, unpromoted."""
        planned = set(decision.models) - set(excluded)
        out = {n: by for n, by in excluded.items() if n in deployed}
        if not out or not planned:
            return
        changed = sqlmesh_api.changed_models(self.context, request.environment, planned)
        parents = {name: spec.depends_on for name, spec in self.models.items()}
        held = held_back(out, changed, parents, self.loaded.downstream)
        held = {name: by for name, by in held.items() if name in decision.models}
        for name, by in sorted(held.items()):
            excluded.setdefault(name, by)
            self.held_back[name] = by
        if held:
            self.recorder.message(
                f"Not promoting {', '.join(sorted(held))} either: "
                f"{', '.join(sorted(set(held.values())))} reads them and failed, and SQLMesh "
                "cannot promote their new versions without giving it a new version it does not "
                "build (its promotion then fails). Their new data stays recorded, unpromoted; "
                "the environment keeps serving their previous versions"
            )

    def _run(self, request: ExecutionRequest, decision: Decision) -> ExecutionResults:
        """`sqlmesh run` for the selection: views already point at the tables it writes."""
        self._promoting = False
        selected = set(decision.models)
        sqlmesh_api.run_models(
            self.context,
            request.environment,
            select_models=decision.select_models,
            execution_time=decision.execution_time,
        )
        excluded = self._downstream_of_failures(selected)
        if not selected >= self.all_models:  # a selection: no standalone audits
            options = {"execution_time": decision.execution_time}
            self._run_standalone_audits(request, selected, self.all_models, options)
        self.serving_plan_id = decision.plan_id
        as_of = sqlmesh_api.execution_timestamp(decision.execution_time)
        results = self._results(request, selected | set(excluded), excluded, 1, as_of)
        results.command = "run"
        return results

    def _audit_alone(self, request: ExecutionRequest, clock: int) -> ExecutionResults:
        """Only checks were selected: no plan and no run, the audits on the current data."""
        options = plan_options(request, False, clock)
        execution_time = sqlmesh_api.execution_timestamp(options["execution_time"])
        results = self._results(request, set(), {}, 0, execution_time)
        results.command = "audit"
        return results

    def _run_standalone_audits(
        self,
        request: ExecutionRequest,
        models: Collection[str],
        present: Collection[str],
        options: Mapping[str, Any],
        selected: Collection[str] | None = None,
    ) -> None:
        """Run, after SQLMesh's plan or run with a selection, the standalone audits it left out
        (SQLMesh 0.236 selects models only: `sqlmesh_api.run_standalone_audits`): those whose
        check is on a selected model of `models` (`selected`, default the request's) and whose
        models are all in the environment (`present`) and did not fail, as SQLMesh would have
        without a selection."""
        usable = set(present) - self.recorder.failed_models()
        chosen = request.selected if selected is None else set(selected)
        audits = [
            audit.name
            for name in sorted(chosen & set(models))
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
            for child in self.loaded.downstream(failed) & models
        }

    def _destructive_error(
        self, request: ExecutionRequest, exc: BaseException, refused: list[str]
    ) -> DestructiveChangeError:
        """SQLMesh says so while planning (the console hears the model and its alter
        operations) or while migrating the table (the error, naming the snapshot)."""
        changes = {model: self.recorder.destructive_changes.get(model, "") for model in refused}
        details = [v for v in changes.values() if v] or sqlmesh_api.migration_details(exc)
        models = ", ".join(sorted(changes)) or "a forward-only model"
        text = "\n".join(details) or str(exc).strip()
        return DestructiveChangeError(
            f"SQLMesh refused a destructive change to {models} in environment "
            f"{request.environment!r}: applying it would drop data of a forward-only model. "
            "Nothing was changed. To allow it, set the resource config `allow_destructive` to "
            f"the model names (e.g. {sorted(changes) or ['<model>']}) or ['*'], or revert the "
            f"change.\n{text}".rstrip()
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
        names = (
            involved
            | evaluated_elsewhere
            | ((request.selected | request.checks_only) & set(self.models))
        )
        statuses = outcomes.model_statuses(names, records, excluded, self.all_models)
        unevaluated = [
            n
            for n, status in statuses.items()
            if status is ModelStatus.UP_TO_DATE and n not in request.checks_only
        ]
        reasons = self._unfilled_reasons(request, unevaluated, execution_time)
        to_audit = self._unchanged_to_audit(request, statuses, reasons)
        audit_records, not_audited = self._audit_unchanged(request, to_audit, execution_time)
        results = request.results_without_models()
        results.models = outcomes.model_outcomes(
            request,
            self.models,
            statuses,
            reasons,
            excluded,
            records,
            tables,
            self.row_counts,
            lambda table: sqlmesh_api.count_rows(self.context, table),
            self.recorder.message,
            execution_time,
            restated=self.recorder.restated,
        )
        for name, version in self._data_versions(request, results).items():
            results.models[name].data_version = version
        for name, by in self.held_back.items():
            if name in results.models:
                results.models[name].held_back_by = by
                results.models[name].failed_upstream = None
        for name in to_audit:
            outcome = results.models[name]
            if name in not_audited:
                if name not in request.selected:  # checks alone: no data to check, no result
                    outcome.status = ModelStatus.NOT_FILLED
                    outcome.reason = not_audited[name]
                continue
            spec = self.models[name]
            outcome.audits = outcomes.unchanged_audit_outcomes(
                spec, audit_records, self.recorder.message
            )
            if name not in request.selected:
                outcome.status = ModelStatus.AUDITED
        results.finished_at = time.time()
        results.plan_attempts = attempts
        results.execution_time = execution_time
        return results

    def _data_versions(
        self, request: ExecutionRequest, results: ExecutionResults
    ) -> dict[str, str]:
        """The data versions of the models the environment serves, read from state once SQLMesh
        is done (ADR 15); a run whose writes succeeded is not failed for them."""
        served = [name for name, o in results.models.items() if o.snapshot_version]
        try:
            return sqlmesh_api.data_versions(self.context, request.environment, served)
        except Exception as exc:
            self.recorder.message(
                "Could not read the data versions from SQLMesh's state; these materializations "
                f"carry Dagster's default data version: {type(exc).__name__}: {exc}"
            )
            return {}

    def _unchanged_to_audit(
        self,
        request: ExecutionRequest,
        statuses: Mapping[str, ModelStatus],
        reasons: Mapping[str, str],
    ) -> set[str]:
        """Models whose audits run on their current data (docs/adr/0012): those whose checks
        alone were selected, and, with `audit_unchanged`, selected models SQLMesh found up to
        date; none SQLMesh evaluated (their audits ran) or left with due intervals missing."""
        candidates = set(request.checks_only)
        if request.audit_unchanged:
            candidates |= request.selected
        return {
            name
            for name in candidates
            if statuses.get(name) is ModelStatus.UP_TO_DATE
            and name not in reasons
            and any(not audit.skip for audit in self.models[name].audits)
        }

    def _audit_unchanged(
        self, request: ExecutionRequest, models: Collection[str], execution_time: int
    ) -> tuple[dict[str, ModelRecord], dict[str, str]]:
        """Run the audits of `models` (their standalone audits too) on the environment's current
        data, recorded apart from the plan's records; returns those records and, per model not
        audited, why (logged)."""
        if not models:
            return {}, {}
        nodes = set(models) | {
            audit.name
            for name in models
            for audit in self.models[name].audits
            if audit.standalone and not audit.skip
        }
        with self.recorder.separate_records() as audit_records:
            try:
                not_audited = sqlmesh_api.audit_current_data(
                    self.context, request.environment, nodes, execution_time, request.window
                )
            except Exception as exc:  # the plan's work stands: only these checks go unreported
                why = f"SQLMesh could not run them: {type(exc).__name__}: {exc}"
                not_audited = dict.fromkeys(nodes, why)
                audit_records.clear()
        skipped = {name: why for name, why in not_audited.items() if name in models}
        for name, why in sorted(skipped.items()):
            self.recorder.message(f"Not running the audits of {name} on its current data: {why}")
        return audit_records, skipped

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
        return outcomes.unfilled_reasons(names, due, request.environment)
