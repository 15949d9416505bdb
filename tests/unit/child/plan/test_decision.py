"""What an execution asks of SQLMesh, decided from plain values: run or plan, and how."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mxm_dagster.child.plan.decision import Decision, decide_plan, decide_run, held_back, replan
from mxm_dagster.common.times import from_ms
from mxm_dagster.records.request import ExecutionRequest
from tests.unit.specs_factory import ms

A, B, C = '"db"."s"."a"', '"db"."s"."b"', '"db"."s"."c"'
EMBEDDED, EXTERNAL = '"db"."s"."embedded"', '"db"."s"."external"'
MODELS = frozenset({A, B, C, EMBEDDED})  # the project's models: the external table is none
CLOCK = ms(2024, 3, 1)
WINDOW = (ms(2024, 1, 1), ms(2024, 1, 2))


def request(*selected: str, environment: str = "prod", **kwargs: Any) -> ExecutionRequest:
    return ExecutionRequest(environment, set(selected), **kwargs)


def never_asked() -> Callable[[], Any]:
    """A read of SQLMesh's state the decision must not make: its answer cannot change it."""

    def ask() -> Any:
        pytest.fail("asked SQLMesh's state for a decision it cannot change")

    return ask


def plan(
    req: ExecutionRequest,
    deployed: frozenset[str] = MODELS,
    upstream: frozenset[str] = frozenset(),
    metadata_only: bool = False,
) -> Decision:
    return decide_plan(req, MODELS, deployed, upstream, lambda: metadata_only, CLOCK)


def test_a_run_when_the_environment_finalized_the_plan_remembered_for_these_files() -> None:
    decision = decide_run(request(A, EXTERNAL), "p1", lambda: "p1", MODELS, CLOCK)
    assert decision is not None
    assert decision.command == "run"
    assert decision.plan_id == "p1"
    assert decision.models == {A}
    assert decision.select_models == (A,)
    assert decision.execution_time == CLOCK
    assert decision.report_early


def test_a_run_of_every_model_selects_none() -> None:
    decision = decide_run(request(*MODELS), "p1", lambda: "p1", MODELS, CLOCK)
    assert decision is not None and decision.select_models is None


def test_a_run_keeps_the_execution_time_the_request_gives() -> None:
    req = request(A, plan_options={"execution_time": "2024-02-01"})
    decision = decide_run(req, "p1", lambda: "p1", MODELS, CLOCK)
    assert decision is not None and decision.execution_time == "2024-02-01"


def test_a_plan_when_the_environment_finalized_another_plan() -> None:
    assert decide_run(request(A), "p1", lambda: "p2", MODELS, CLOCK) is None
    assert decide_run(request(A), "p1", lambda: None, MODELS, CLOCK) is None


@pytest.mark.parametrize(
    ("req", "known"),
    [
        (request(A), None),  # no plan remembered for these files
        (request(A, restate=True), "p1"),
        (request(A, window=WINDOW), "p1"),
    ],
)
def test_a_plan_without_reading_the_environment_when_a_run_cannot_do_what_is_asked(
    req: ExecutionRequest, known: str | None
) -> None:
    assert decide_run(req, known, never_asked(), MODELS, CLOCK) is None


def test_a_plan_takes_the_selected_models_and_the_upstream_ones_the_environment_lacks() -> None:
    decision = plan(
        request(A, EXTERNAL),
        deployed=frozenset({A, B}),
        upstream=frozenset({B, EMBEDDED, EXTERNAL}),
    )
    assert decision.command == "plan"
    assert decision.models == {A, EMBEDDED, EXTERNAL}
    assert decision.select_models == tuple(sorted({A, EMBEDDED, EXTERNAL}))
    assert decision.plan_id is None


def test_a_plan_of_every_model_selects_none() -> None:
    decision = plan(request(A, B), deployed=frozenset({A, B}), upstream=frozenset({C, EMBEDDED}))
    assert decision.models >= MODELS
    assert decision.select_models is None


def test_a_development_plan_of_every_model_leaves_the_backfill_to_sqlmesh() -> None:
    """Naming every model for backfill in dev evaluated the unchanged ones too, in the tables
    they share with prod; SQLMesh's own dev plan backfills what changed in dev."""
    decision = plan(request(A, B, C, EMBEDDED, environment="dev"))
    assert decision.select_models is None
    assert decision.backfill_models is None
    assert decision.run_due


def test_a_plan_fills_what_is_due_with_run_and_reports_early() -> None:
    decision = plan(request(A))
    assert (decision.run_due, decision.fill_after, decision.report_early) == (True, False, True)
    assert decision.restate == () and decision.messages == ()
    assert decision.options == {"execution_time": CLOCK}


def test_a_restatement_restates_only_the_models_the_environment_has() -> None:
    decision = plan(request(A, B, restate=True, environment="dev"), deployed=frozenset({A}))
    assert decision.restate == (A,)
    assert decision.messages == (
        f"Not restating {B}: environment 'dev' has no version of them yet, so they are built "
        "instead",
    )


def test_a_restatement_plans_without_run_and_fills_what_is_due_after() -> None:
    decision = decide_plan(request(A, restate=True), MODELS, MODELS, (), never_asked(), CLOCK)
    assert (decision.run_due, decision.fill_after, decision.report_early) == (False, True, False)


def test_a_metadata_only_change_plans_without_run_and_fills_what_is_due_after() -> None:
    decision = plan(request(A), metadata_only=True)
    assert (decision.run_due, decision.fill_after, decision.report_early) == (False, True, False)


def test_a_partition_window_fills_only_the_window_and_never_after() -> None:
    decision = plan(request(A, window=WINDOW, environment="dev"), metadata_only=True)
    assert (decision.run_due, decision.fill_after, decision.report_early) == (False, False, True)
    start, end = (from_ms(t) for t in WINDOW)
    assert decision.options == {"start": start, "end": end, "execution_time": CLOCK}


def test_a_prod_window_plans_as_of_its_end_unless_restating() -> None:
    start, end = (from_ms(t) for t in WINDOW)
    assert plan(request(A, window=WINDOW)).options == {"execution_time": end}
    restating = plan(request(A, window=WINDOW, restate=True))
    assert restating.restate == (A,)
    assert restating.options == {"start": start, "end": end, "execution_time": CLOCK}


def test_an_explicit_execution_time_wins_over_the_clock() -> None:
    decision = plan(request(A, plan_options={"execution_time": "2024-02-01"}))
    assert decision.execution_time == "2024-02-01"


def test_a_replan_leaves_out_the_failed_models_and_restates_nothing() -> None:
    first = plan(request(A, B, restate=True))
    again = replan(first, {B: B}, request(A, B, restate=True), MODELS, CLOCK)
    assert again.models == {A}
    assert again.select_models == (A,)
    assert again.restate == () and again.messages == ()
    assert (again.fill_after, again.report_early) == (first.fill_after, first.report_early)


# rates -> fees -> report; accounts -> fees; other reads accounts
LEDGER = {"fees": ("rates", "accounts"), "report": ("fees",), "other": ("accounts",)}


def below_in(parents: dict[str, tuple[str, ...]]) -> Callable[[str], set[str]]:
    def below(name: str) -> set[str]:
        found: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            for child, reads in parents.items():
                if current in reads and child not in found:
                    found.add(child)
                    pending.append(child)
        return found

    return below


def test_a_replan_holds_back_what_changed_above_a_left_out_model() -> None:
    """Measured on SQLMesh 0.236 (conformance ledger_life): a re-plan without the failed fees
    while its upstream rates changed gives fees a new version with no table and fails
    promoting its view. The changed rates stay out, with what reads them."""
    excluded = {"fees": "fees", "report": "fees"}
    held = held_back(excluded, {"rates", "report"}, LEDGER, below_in(LEDGER))
    assert held == {"rates": "fees"}


def test_a_replan_holds_back_nothing_when_nothing_above_the_failure_changed() -> None:
    assert held_back({"fees": "fees"}, {"other"}, LEDGER, below_in(LEDGER)) == {}


def test_what_is_held_back_takes_its_other_readers_and_their_changed_upstream() -> None:
    parents = {**LEDGER, "side": ("rates", "extra")}
    held = held_back({"fees": "fees"}, {"rates", "extra", "side"}, parents, below_in(parents))
    # report reads fees: below rates too (in a run it is already left out below fees)
    assert held == {"rates": "fees", "side": "fees", "extra": "fees", "report": "fees"}


def test_a_replan_with_nothing_left_keeps_the_last_plans_time() -> None:
    req = request(A, window=WINDOW, restate=True)
    first = plan(req)
    again = replan(first, [A], req, MODELS, CLOCK)
    assert not again.models
    assert again.options == first.options


def below(*names: str) -> Callable[[frozenset[str]], frozenset[str]]:
    """SQLMesh's answer for what lies below the models to restate (environment or project)."""
    return lambda _restating: frozenset(names)


def test_a_restatement_plans_the_models_below_it_as_plan_restate_model_does() -> None:
    """SQLMesh restates every model below a restated one; a plan's selection keeps it from
    backfilling them, so they are planned too (selected or not)."""
    asked: list[frozenset[str]] = []

    def downstream(restating: frozenset[str]) -> frozenset[str]:
        asked.append(restating)
        return frozenset({B, C})

    decision = decide_plan(
        request(A, restate=True), MODELS, MODELS, (), lambda: False, CLOCK, downstream
    )
    assert asked == [frozenset({A})]
    assert decision.restate == (A,)  # SQLMesh cascades: only the asked-for model is named
    assert decision.models == {A, B, C}
    assert decision.below_restated == {B, C}
    assert decision.select_models == (A, B, C)
    assert (decision.run_due, decision.fill_after, decision.report_early) == (False, True, False)
    assert decision.messages == (
        f"Restating {A} also restates the models below it in environment 'prod', as "
        f"`sqlmesh plan --restate-model` does: {B}, {C}",
    )


def test_models_below_a_restatement_that_are_selected_are_not_below_restated() -> None:
    decision = decide_plan(
        request(A, B, restate=True), MODELS, MODELS, (), lambda: False, CLOCK, below(B, C)
    )
    assert decision.restate == (A, B)
    assert decision.below_restated == {C}


def test_no_restatement_asks_nothing_about_what_is_below() -> None:
    def downstream(_restating: frozenset[str]) -> frozenset[str]:
        pytest.fail("asked what is below without a restatement")

    decision = decide_plan(request(A), MODELS, MODELS, (), lambda: False, CLOCK, downstream)
    assert decision.models == {A} and decision.below_restated == frozenset()
    # on a fresh environment nothing is restated, so nothing below is asked for either
    fresh = decide_plan(
        request(A, restate=True), MODELS, frozenset(), (), lambda: False, CLOCK, downstream
    )
    assert fresh.restate == () and fresh.models == {A}


def test_models_below_that_the_environment_lacks_or_the_project_lost_are_said_not_restated() -> (
    None
):
    gone = '"db"."s"."gone"'
    decision = decide_plan(
        request(A, restate=True, environment="dev"),
        MODELS,
        frozenset({A, B, gone}),
        (),
        lambda: False,
        CLOCK,
        below(B, C, gone),
    )
    assert decision.models == {A, B}
    assert decision.below_restated == {B}
    assert decision.messages == (
        f"Restating {A} also restates the models below it in environment 'dev', as "
        f"`sqlmesh plan --restate-model` does: {B}",
        f"Not restating {C}, below a restated model: environment 'dev' has no version of "
        "them yet (a run that selects them builds them)",
        f"Not restating {gone}, below a restated model in environment 'dev': the project no "
        "longer has them",
    )


def test_a_restating_window_plans_the_models_below_over_the_same_window() -> None:
    start, end = (from_ms(t) for t in WINDOW)
    decision = decide_plan(
        request(A, window=WINDOW, restate=True), MODELS, MODELS, (), lambda: False, CLOCK, below(B)
    )
    assert decision.models == {A, B} and decision.restate == (A,)
    assert decision.options == {"start": start, "end": end, "execution_time": CLOCK}
    # a window fills only the window: nothing runs after, and models report as they finish
    assert (decision.run_due, decision.fill_after, decision.report_early) == (False, False, True)


def test_a_replan_after_a_failure_below_a_restatement_keeps_the_rest_below() -> None:
    req = request(A, restate=True)
    first = decide_plan(req, MODELS, MODELS, (), lambda: False, CLOCK, below(B, C))
    again = replan(first, {B: B, C: B}, req, MODELS, CLOCK)
    assert again.models == {A}
    assert again.restate == ()


def test_a_restatement_is_always_planned_never_run() -> None:
    """`sqlmesh run` cannot restate: a restating request plans even when the environment serves
    the project unchanged, without asking which plan it serves."""
    assert decide_run(request(A, restate=True), "p1", never_asked(), MODELS, CLOCK) is None
