"""The planning step: a request and a few answers from SQLMesh's state in, an `ExecutionPlan` out.

It calls no SQLMesh itself. What it needs to know of the environment and the loaded project it
asks through `StateReads`, and only when the answer can change the plan: a run is decided from
the environment's last plan alone, and the project's files are loaded (by the Context-backed
reads, `state_reads`) only when a plan is needed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from mxm_dagster.child.plan.decision import Decision, decide_plan, decide_run, plan_options
from mxm_dagster.child.plan.execution_plan import (
    CurrentDataAudit,
    ExecutionPlan,
    StandaloneAudit,
)
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.specs import LoadedModels, ModelSpec

CHECKS_ALONE = "only checks were selected: their audits run on the current data, nothing else"
CHECKS_ONLY = "its checks alone were selected"
UNCHANGED = "selected, and audit_unchanged is on"


class StateReads(Protocol):
    """What the planner asks of SQLMesh's state and of the loaded project."""

    def finalized_plan_id(self) -> str | None:
        """The plan that last finished updating the environment."""

    def deployed(self) -> Collection[str]:
        """The environment's models (none when it does not exist yet)."""

    def upstream(self, names: Collection[str]) -> Collection[str]:
        """Every model SQLMesh knows above `names` (EMBEDDED and EXTERNAL ones included)."""

    def has_metadata_only_changes(self) -> bool:
        """Whether a loaded model differs from its deployed version in metadata only."""

    def downstream(self, names: frozenset[str]) -> Collection[str]:
        """Every model below `names`, in the environment or in the loaded project."""


def plan_execution(
    request: ExecutionRequest,
    loaded: LoadedModels,
    known_plan_id: str | None,
    clock: int,
    reads: StateReads,
) -> ExecutionPlan:
    """What SQLMesh will be asked to do for `request`: `sqlmesh run` when the environment still
    serves the plan remembered for these files (`known_plan_id`, docs/adr/0007), otherwise a
    plan; neither when only checks were selected. `clock` is SQLMesh's now in ms."""
    specs = loaded.by_name()
    models = frozenset(name for name, spec in specs.items() if spec.is_model)
    audits = _current_data_audits(request, specs)
    if not request.selected and request.checks_only:
        return ExecutionPlan(
            environment=request.environment,
            call=None,
            why=CHECKS_ALONE,
            clock=clock,
            execution_time=plan_options(request, False, clock)["execution_time"],
            current_data_audits=audits,
        )
    run = decide_run(request, known_plan_id, reads.finalized_plan_id, models, clock)
    if run is not None:
        return ExecutionPlan(
            environment=request.environment,
            call=run,
            why=f"the environment serves these project files unchanged (plan {run.plan_id})",
            clock=clock,
            execution_time=run.execution_time,
            standalone_audits=_standalone_audits(request.selected, specs),
            current_data_audits=audits,
        )
    call, deployed = plan_call(request, models, clock, reads)
    return ExecutionPlan(
        environment=request.environment,
        call=call,
        why=_why_plan(request, known_plan_id),
        clock=clock,
        execution_time=call.execution_time,
        deployed=deployed,
        standalone_audits=_standalone_audits(request.selected | call.below_restated, specs),
        current_data_audits=audits,
    )


def plan_call(
    request: ExecutionRequest, models: Collection[str], clock: int, reads: StateReads
) -> tuple[Decision, frozenset[str]]:
    """The plan of `request` and the environment's models: what a run applies first and a
    preview builds (ADR 18)."""
    deployed = frozenset(reads.deployed())
    call = decide_plan(
        request,
        models,
        deployed,
        reads.upstream(request.selected),
        reads.has_metadata_only_changes,
        clock,
        reads.downstream,
    )
    return call, deployed


def _why_plan(request: ExecutionRequest, known_plan_id: str | None) -> str:
    if request.restate:
        return "a restatement is always planned: `sqlmesh run` cannot restate"
    if request.window is not None:
        return "a partition window is planned as that window"
    if known_plan_id is None:
        return "no plan is remembered for these project files"
    return "the environment's last plan is not the one remembered for these project files"


def _standalone_audits(
    reported: Collection[str], specs: Mapping[str, ModelSpec]
) -> tuple[StandaloneAudit, ...]:
    """The standalone audits of the models whose checks this execution reports."""
    return tuple(
        StandaloneAudit(audit.name, name, frozenset(audit.reads))
        for name in sorted(reported)
        if name in specs and specs[name].is_model
        for audit in specs[name].audits
        if audit.standalone
    )


def _current_data_audits(
    request: ExecutionRequest, specs: Mapping[str, ModelSpec]
) -> tuple[CurrentDataAudit, ...]:
    """Models whose audits may run on their current data (docs/adr/0012, 0019): those whose
    checks alone were selected, and with `audit_unchanged` the selected ones; only models with
    an audit SQLMesh runs. Whether each runs depends on the outcome: see `audit_pass`."""
    why = dict.fromkeys(request.selected if request.audit_unchanged else (), UNCHANGED)
    why.update(dict.fromkeys(request.checks_only, CHECKS_ONLY))
    return tuple(
        CurrentDataAudit(name, reason)
        for name, reason in sorted(why.items())
        if name in specs
        and specs[name].is_model
        and any(not audit.skip for audit in specs[name].audits)
    )
