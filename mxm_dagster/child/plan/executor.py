"""Does what an `ExecutionPlan` says against an open SQLMesh Context, with failure isolation.

SQLMesh promotes nothing when any model of a plan fails. Intervals that succeeded are recorded, so
planning again without the failed models and their descendants promotes the rest without
recomputing them. What to call is the plan's (`planner`); what the console recorded becomes
outcomes in `collect`, and the audits on current data run in `audit_pass`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.plan.decision import Decision, held_back, replan
from mxm_dagster.child.plan.execution_plan import ExecutionPlan
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.common.errors import DestructiveChangeError
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.specs import LoadedModels


@dataclass
class Done:
    """What the executor did, for the results: what they are assembled from besides the
    recorder's records."""

    execution_time: int  # SQLMesh's now for what it filled (epoch ms)
    involved: set[str] = field(default_factory=set)  # every model planned, run or left out
    excluded: dict[str, str] = field(default_factory=dict)  # left out -> the failure above
    #: evaluated but left out of the re-plan with the failed model that holds them back
    held_back: dict[str, str] = field(default_factory=dict)
    attempts: int = 0  # plans applied, re-plans included; a run is one
    serving_plan_id: str | None = None  # set when the environment now serves the project


class Executor:
    """Carries out one `ExecutionPlan`: apply the plan (and re-plan without failures) or run."""

    def __init__(self, context: Context, loaded: LoadedModels, recorder: OutcomeRecorder) -> None:
        self.context = context
        self.loaded = loaded
        self.models = loaded.by_name()
        self.all_models = {name for name, spec in self.models.items() if spec.is_model}
        self.recorder = recorder
        recorder.owners = loaded.standalone_audits()  # a failed one fails its model's step

    def carry_out(self, request: ExecutionRequest, plan: ExecutionPlan) -> Done:
        """Either way SQLMesh fills what each model's cron made due as of the plan's execution
        time, so that the check of what is still due refers to the same moment (docs/adr/0007)."""
        call = plan.call
        if call is None:  # checks alone: the audit pass does all there is to do
            return Done(sqlmesh_api.execution_timestamp(plan.execution_time))
        if call.command == "run":
            return self._run(request, plan, call)
        return self._plan(request, plan, call)

    def _plan(self, request: ExecutionRequest, plan: ExecutionPlan, decision: Decision) -> Done:
        """Apply the plan; when models fail, plan again without them and their descendants."""
        for message in decision.messages:
            self.recorder.message(message)
        excluded: dict[str, str] = {}  # model -> the failed model it descends from
        held: dict[str, str] = {}
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
                for name, by in self._held_back(request, decision, excluded, plan.deployed):
                    excluded.setdefault(name, by)
                    held[name] = by
                decision = replan(decision, excluded, request, self.all_models, plan.clock)
        planned = set(decision.models)
        done = Done(
            sqlmesh_api.execution_timestamp(decision.execution_time),
            excluded=excluded,
            held_back=held,
            attempts=attempts,
        )
        # A plan of every model deploys the project as it is, unless it restates: SQLMesh plans
        # a restatement from its state and ignores local edits, so ask the environment then
        if not excluded and (
            (planned >= self.all_models and not restated_first)
            or sqlmesh_api.serves_project(self.context, request.environment)
        ):
            done.serving_plan_id = sqlmesh_api.finalized_plan_id(self.context, request.environment)
        if decision.fill_after:
            models = {n for n in planned if n in self.all_models}
            for child, failed in self._fill_due(request, models, done.execution_time).items():
                excluded.setdefault(child, failed)
        if decision.fill_after or not planned >= self.all_models:  # a selection: see below
            succeeded = planned - set(excluded)
            present = (set(plan.deployed) | succeeded) - set(excluded)
            self._run_standalone_audits(plan, succeeded, present, decision.options)
        done.involved = planned | set(excluded)
        return done

    def _held_back(
        self,
        request: ExecutionRequest,
        decision: Decision,
        excluded: Mapping[str, str],
        deployed: Collection[str],
    ) -> list[tuple[str, str]]:
        """What to leave out of the re-plan besides `excluded`: what SQLMesh cannot promote
        without them, the models changed in this execution above a left-out deployed model
        (decision's `held_back`); their new versions stay recorded, unpromoted."""
        planned = set(decision.models) - set(excluded)
        out = {n: by for n, by in excluded.items() if n in deployed}
        if not out or not planned:
            return []
        changed = sqlmesh_api.changed_models(self.context, request.environment, planned)
        parents = {name: spec.depends_on for name, spec in self.models.items()}
        held = held_back(out, changed, parents, self.loaded.downstream)
        held = {name: by for name, by in held.items() if name in decision.models}
        if held:
            self.recorder.message(
                f"Not promoting {', '.join(sorted(held))} either: "
                f"{', '.join(sorted(set(held.values())))} reads them and failed, and SQLMesh "
                "cannot promote their new versions without giving it a new version it does not "
                "build (its promotion then fails). Their new data stays recorded, unpromoted; "
                "the environment keeps serving their previous versions"
            )
        return sorted(held.items())

    def _run(self, request: ExecutionRequest, plan: ExecutionPlan, decision: Decision) -> Done:
        """`sqlmesh run` for the selection: views already point at the tables it writes."""
        selected = set(decision.models)
        sqlmesh_api.run_models(
            self.context,
            request.environment,
            select_models=decision.select_models,
            execution_time=decision.execution_time,
        )
        excluded = self._downstream_of_failures(selected)
        if not selected >= self.all_models:  # a selection: SQLMesh runs no standalone audit
            options = {"execution_time": decision.execution_time}
            self._run_standalone_audits(plan, selected, self.all_models, options)
        return Done(
            sqlmesh_api.execution_timestamp(decision.execution_time),
            involved=selected | set(excluded),
            excluded=excluded,
            attempts=1,
            serving_plan_id=decision.plan_id,
        )

    def _run_standalone_audits(
        self,
        plan: ExecutionPlan,
        models: Collection[str],
        present: Collection[str],
        options: Mapping[str, Any],
    ) -> None:
        """Run, after SQLMesh's plan or run with a selection, the plan's standalone audits that
        SQLMesh left out (`sqlmesh_api.run_standalone_audits`): those on a model of `models`
        whose models are all in the environment (`present`) and did not fail, as SQLMesh
        would have without a selection."""
        usable = set(present) - self.recorder.failed_models()
        audits = [
            audit.name
            for audit in plan.standalone_audits
            if audit.model in models and {audit.model, *audit.reads} <= usable
        ]
        if audits:
            sqlmesh_api.run_standalone_audits(
                self.context,
                plan.environment,
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
