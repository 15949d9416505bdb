"""The planning step's value: what an execution will do, decided without DuckDB or a Context.

Each case builds the `ExecutionPlan` from a request, a hand-built project and fixed answers
of SQLMesh's state, then compares it (and what it prints) with what the executor must do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import pytest

from mxm_dagster.child.plan.execution_plan import (
    CurrentDataAudit,
    ExecutionPlan,
    StandaloneAudit,
)
from mxm_dagster.child.plan.planner import CHECKS_ALONE, CHECKS_ONLY, UNCHANGED, plan_execution
from mxm_dagster.common.times import from_ms
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.specs import AuditSpec, LoadedModels
from tests.unit.specs_factory import model, ms

A, B, C, SOURCE = '"db"."s"."a"', '"db"."s"."b"', '"db"."s"."c"', '"db"."s"."source"'
NOT_NULL = AuditSpec("not_null", "not_null", blocking=True)
MATCHES = AuditSpec("b_matches_a", "b_matches_a", blocking=True, standalone=True, reads=(A,))
SKIPPED = AuditSpec("unique", "unique", blocking=False, skip=True)
# source (external) -> a -> b -> c; b has a standalone audit reading a; c's audit never runs
PROJECT = LoadedModels(
    default_catalog="db",
    dialect="duckdb",
    engine="duckdb",
    models=(
        model(SOURCE, kind="EXTERNAL", is_external=True),
        model(A, audits=(NOT_NULL,), depends_on=(SOURCE,)),
        model(B, audits=(NOT_NULL, MATCHES), depends_on=(A,)),
        model(C, kind="FULL", audits=(SKIPPED,), depends_on=(B,)),
    ),
)
EVERY_MODEL = frozenset({A, B, C})
CLOCK = ms(2024, 3, 1, 6)
WINDOW = (ms(2024, 2, 1), ms(2024, 2, 2))


@dataclass
class Reads:
    """SQLMesh's answers, fixed; `asked` records which questions the planner asked."""

    plan_id: str | None = None
    deployed_models: frozenset[str] = frozenset()
    above: frozenset[str] = frozenset()
    metadata_only: bool = False
    below: frozenset[str] = frozenset()
    asked: list[str] = field(default_factory=list)

    def finalized_plan_id(self) -> str | None:
        self.asked.append("finalized_plan_id")
        return self.plan_id

    def deployed(self) -> Collection[str]:
        self.asked.append("deployed")
        return self.deployed_models

    def upstream(self, names: Collection[str]) -> Collection[str]:
        self.asked.append("upstream")
        return self.above

    def has_metadata_only_changes(self) -> bool:
        self.asked.append("has_metadata_only_changes")
        return self.metadata_only

    def downstream(self, names: frozenset[str]) -> Collection[str]:
        self.asked.append("downstream")
        return self.below


def request(*selected: str, environment: str = "prod", **kwargs: Any) -> ExecutionRequest:
    return ExecutionRequest(environment, set(selected), **kwargs)


def plan_of(req: ExecutionRequest, reads: Reads, known_plan_id: str | None = None) -> ExecutionPlan:
    return plan_execution(req, PROJECT, known_plan_id, CLOCK, reads)


def test_first_build_plans_every_model_and_fills_what_is_due() -> None:
    reads = Reads(above=frozenset({A, B, SOURCE}))
    plan = plan_of(request(A, B, C), reads)
    assert str(plan).splitlines() == [
        f"plan in 'prod' as of {CLOCK}: no plan is remembered for these project files",
        f"models: {A}, {B}, {C}, {SOURCE}",
        "select: every model",
        "fills what each model's cron made due (run=True)",
        f"standalone audit: b_matches_a on {B}, run by us if the call selects models",
    ]
    assert plan.deployed == frozenset()
    assert plan.current_data_audits == ()  # audit_unchanged is off by default (ADR 19)
    assert reads.asked == ["deployed", "upstream", "has_metadata_only_changes"]


def test_a_deployed_project_runs_from_state_without_reading_the_project() -> None:
    """Nothing due or not, a run is what `sqlmesh run` does; what it fills is SQLMesh's to say."""
    reads = Reads(plan_id="p1", deployed_models=EVERY_MODEL)
    plan = plan_of(request(A, B, C), reads, known_plan_id="p1")
    assert plan.command == "run"
    assert plan.why == "the environment serves these project files unchanged (plan p1)"
    assert plan.call is not None and plan.call.select_models is None
    assert plan.execution_time == CLOCK
    assert reads.asked == ["finalized_plan_id"]  # no model file is loaded for a run
    assert str(plan).splitlines()[:3] == [
        f"run in 'prod' as of {CLOCK}: {plan.why}",
        f"models: {A}, {B}, {C}",
        "select: every model",
    ]


def test_a_plan_when_another_plan_changed_the_environment() -> None:
    reads = Reads(plan_id="p2", deployed_models=EVERY_MODEL)
    plan = plan_of(request(A), reads, known_plan_id="p1")
    assert plan.command == "plan"
    assert plan.why == (
        "the environment's last plan is not the one remembered for these project files"
    )
    assert plan.deployed == EVERY_MODEL


def test_a_due_interval_is_filled_as_of_the_execution_time_the_run_gives() -> None:
    """The execution-time tag fixes what each cron made due; a selected model runs with the
    standalone audits SQLMesh's selection leaves out."""
    req = request(B, plan_options={"execution_time": "2024-03-02 06:00"})
    plan = plan_of(req, Reads(plan_id="p1"), known_plan_id="p1")
    assert plan.command == "run"
    assert plan.execution_time == "2024-03-02 06:00"
    assert plan.call is not None and plan.call.select_models == (B,)
    assert plan.standalone_audits == (StandaloneAudit("b_matches_a", B, frozenset({A})),)
    assert str(plan).splitlines()[0].startswith("run in 'prod' as of 2024-03-02 06:00:")


def test_restatement_by_tag_plans_the_models_below_and_runs_what_is_due_after() -> None:
    reads = Reads(plan_id="p1", deployed_models=EVERY_MODEL, below=frozenset({B, C}))
    plan = plan_of(request(A, restate=True), reads, known_plan_id="p1")
    assert str(plan).splitlines() == [
        f"plan in 'prod' as of {CLOCK}: a restatement is always planned: `sqlmesh run` "
        "cannot restate",
        f"models: {A}, {B}, {C}",
        "select: every model",
        f"restate: {A}",
        f"restated below: {B}, {C}",
        "deferred: what is still due is run after the plan",
        "no model is reported before the end",
        f"message: Restating {A} also restates the models below it in environment 'prod', as "
        f"`sqlmesh plan --restate-model` does: {B}, {C}",
        f"standalone audit: b_matches_a on {B}, run by us if the call selects models",
    ]
    # a restatement never runs, so which plan the environment serves is not asked
    assert reads.asked == ["deployed", "upstream", "downstream"]


def test_a_partition_window_plans_that_window_only() -> None:
    start, end = (from_ms(t) for t in WINDOW)
    dev = plan_of(request(A, window=WINDOW, environment="dev"), Reads(deployed_models={A}))
    assert dev.call is not None
    assert dev.call.options == {"start": start, "end": end, "execution_time": CLOCK}
    assert (dev.call.run_due, dev.call.fill_after, dev.call.report_early) == (False, False, True)
    assert f"window: {start} to {end}" in dev.lines()
    assert dev.why == "a partition window is planned as that window"
    prod = plan_of(request(A, window=WINDOW), Reads(deployed_models={A}), known_plan_id="p1")
    assert prod.command == "plan" and prod.execution_time == end  # prod plans as of its end


def test_checks_alone_plan_no_call_and_audit_the_current_data() -> None:
    reads = Reads()
    plan = plan_of(request(checks_only={B, C}), reads, known_plan_id="p1")
    assert plan == ExecutionPlan(
        environment="prod",
        call=None,
        why=CHECKS_ALONE,
        clock=CLOCK,
        execution_time=CLOCK,
        current_data_audits=(CurrentDataAudit(B, CHECKS_ONLY),),  # c's only audit never runs
    )
    assert plan.command == "audit"
    assert reads.asked == []
    assert str(plan).splitlines() == [
        f"audit in 'prod' as of {CLOCK}: {CHECKS_ALONE}",
        f"audit current data: {B} ({CHECKS_ONLY})",
    ]


@pytest.mark.parametrize(
    ("audit_unchanged", "expected"),
    [
        (False, (CurrentDataAudit(C, CHECKS_ONLY),)),
        (True, (CurrentDataAudit(A, UNCHANGED), CurrentDataAudit(B, UNCHANGED))),
    ],
)
def test_audit_unchanged_names_the_selected_models_for_the_audit_pass(
    audit_unchanged: bool, expected: tuple[CurrentDataAudit, ...]
) -> None:
    """Only models with an audit SQLMesh runs are named (here c has one); models whose checks
    alone were selected are named whether audit_unchanged is on or off."""
    c_checked = dataclasses.replace(PROJECT.by_name()[C], audits=(NOT_NULL,))
    project = dataclasses.replace(
        PROJECT, models=tuple(m for m in PROJECT.models if m.name != C) + (c_checked,)
    )
    req = request(A, B, checks_only=set() if audit_unchanged else {C})
    req.audit_unchanged = audit_unchanged
    plan = plan_execution(req, project, "p1", CLOCK, Reads(plan_id="p1"))
    assert plan.command == "run"
    assert plan.current_data_audits == expected


def test_the_plan_is_a_value() -> None:
    first = plan_of(request(A), Reads(deployed_models=EVERY_MODEL))
    assert first == plan_of(request(A), Reads(deployed_models=EVERY_MODEL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.why = "changed"  # type: ignore[misc]
