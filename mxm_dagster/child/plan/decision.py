"""The SQLMesh call of one execution, decided from plain values before SQLMesh is asked to do it.

Every choice here (run or plan, which models, what to restate, how due intervals get filled) is a
function of what the planner read from SQLMesh beforehand, so it is tested without a Context.
Two reads are passed as questions instead of answers (`finalized_plan_id`,
`has_metadata_only_changes`): each costs a pass over SQLMesh's environment state, and is asked
only when its answer can change the decision.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from mxm_dagster.records.request import ExecutionRequest


@dataclass(frozen=True)
class Decision:
    """One SQLMesh call to make, `sqlmesh run` or a plan, and how."""

    command: Literal["run", "plan"]
    #: A run's selected models; a plan's: those and the upstream models the environment lacks.
    models: frozenset[str]
    select_models: tuple[str, ...] | None  # None: every model, which SQLMesh also plans fastest
    options: Mapping[str, Any]  # the plan's window, the request's options, the execution time
    #: What the plan may evaluate. None: SQLMesh's own choice, the selection (with what it reads)
    #: or, in a development environment without a selection, the models changed there. Never
    #: every model in dev: the unchanged ones share prod's tables, and evaluating them there
    #: changes what prod serves (a FULL model rebuilt ahead of prod's run), which
    #: `sqlmesh plan dev` never does (docs/adr/0007)
    backfill_models: tuple[str, ...] | None = None
    restate: tuple[str, ...] = ()
    #: Models planned only because they are below a restated one: SQLMesh restates them too
    below_restated: frozenset[str] = frozenset()
    run_due: bool = False  # plan with `run=True`: the plan also fills what each cron made due
    fill_after: bool = False  # plan without `run`, then run what is still due
    report_early: bool = True  # off when a second SQLMesh call may evaluate a model again
    messages: tuple[str, ...] = ()  # for the run's log, before SQLMesh starts
    plan_id: str | None = None  # a run's: the plan the environment already serves

    @property
    def execution_time(self) -> Any:
        """As the request or its window gives it (SQLMesh parses it), else the clock in ms."""
        return self.options["execution_time"]


def plan_options(request: ExecutionRequest, restating: bool, clock: int) -> dict[str, Any]:
    """An explicit option (the execution-time tag) wins over the window's default, and the
    execution time is fixed (to `clock` unless given) so that the check of what is still due
    refers to the moment SQLMesh filled as of."""
    options: dict[str, Any] = {**request.plan_window(restating), **request.plan_options}
    options.setdefault("execution_time", clock)
    return options


def decide_run(
    request: ExecutionRequest,
    known_plan_id: str | None,
    finalized_plan_id: Callable[[], str | None],
    models: Collection[str],
    clock: int,
) -> Decision | None:
    """`sqlmesh run` when the environment already serves this project unchanged: the plan SQLMesh
    finalized last (`finalized_plan_id`) is the one remembered for these files (`known_plan_id`).
    It fills the same intervals as a plan, without fingerprinting. None: a plan is needed.

    `models` are the project's models (external ones left out); `clock` is SQLMesh's now in ms."""
    if not request.may_run_without_plan or known_plan_id is None:
        return None
    if finalized_plan_id() != known_plan_id:
        return None
    selected = frozenset(n for n in request.selected if n in models)
    return Decision(
        command="run",
        models=selected,
        select_models=_selection(selected, models),
        options=plan_options(request, False, clock),
        plan_id=known_plan_id,
    )


def decide_plan(
    request: ExecutionRequest,
    models: Collection[str],
    deployed: Collection[str],
    upstream: Collection[str],
    has_metadata_only_changes: Callable[[], bool],
    clock: int,
    downstream: Callable[[frozenset[str]], Collection[str]] = lambda _names: (),
) -> Decision:
    """The plan for `request`, from the environment's models (`deployed`), every node SQLMesh
    knows above the selection (`upstream`) and, asked only when restating, every node below the
    models to restate (`downstream`: in the environment or in the project).

    The plan takes the selection plus the upstream models missing from the environment, which
    SQLMesh needs with it. EMBEDDED and EXTERNAL ones count: an EMBEDDED model left out of a
    plan's selection is not inlined, and its readers fail ("Table ... does not exist", measured).
    A restatement also takes the environment's models below the restated ones: SQLMesh restates
    them with it (`plan --restate-model`), but a plan's selection keeps it from backfilling
    models outside the selection, so they would keep data computed from the old rows while
    SQLMesh's state calls them complete.
    Plans that would lose work with `run=True` plan without it and run what is due after
    (`fill_after`); a model may then be evaluated twice, so none is reported early."""
    selected = frozenset(n for n in request.selected if n in models) | {
        n for n in upstream if n not in deployed
    }
    restatable, messages = _restatable(request, models, deployed)
    restating = restatable & selected
    below, below_messages = (
        _below_restated(restating, downstream(restating), models, deployed, request.environment)
        if restating
        else (frozenset(), ())
    )
    planned = selected | below
    fill_after = request.runs_due and (bool(restatable) or has_metadata_only_changes())
    return Decision(
        command="plan",
        models=planned,
        select_models=_selection(planned, models),
        # with nothing to plan no plan runs: the execution is as of the restatement's time
        options=plan_options(request, bool(restating if planned else restatable), clock),
        restate=tuple(sorted(restating)),
        below_restated=below - selected,
        run_due=request.runs_due and not fill_after,
        fill_after=fill_after,
        report_early=not fill_after,
        messages=messages + below_messages,
    )


def _below_restated(
    restating: frozenset[str],
    below: Collection[str],
    models: Collection[str],
    deployed: Collection[str],
    environment: str,
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The models below `restating` that the plan takes so that SQLMesh recomputes them: those
    the environment has. A project model it lacks has nothing to recompute (a run selecting it
    builds it); a model only the environment has (deleted from the project) is not planned from
    here, so SQLMesh's restatement would clear it without refilling it."""
    restated = frozenset(n for n in below if n in deployed and n in models)
    messages: list[str] = []
    if restated:
        messages.append(
            f"Restating {', '.join(sorted(restating))} also restates the models below "
            f"{'it' if len(restating) == 1 else 'them'} in environment {environment!r}, as "
            f"`sqlmesh plan --restate-model` does: {', '.join(sorted(restated))}"
        )
    new = sorted(n for n in below if n in models and n not in deployed)
    if new:
        messages.append(
            f"Not restating {', '.join(new)}, below a restated model: environment "
            f"{environment!r} has no version of them yet (a run that selects them builds them)"
        )
    gone = sorted(n for n in below if n in deployed and n not in models)
    if gone:
        messages.append(
            f"Not restating {', '.join(gone)}, below a restated model in environment "
            f"{environment!r}: the project no longer has them"
        )
    return restated, tuple(messages)


def replan(
    decision: Decision,
    excluded: Collection[str],
    request: ExecutionRequest,
    models: Collection[str],
    clock: int,
) -> Decision:
    """The plan again without `excluded` (failed models and the models below them), restating
    nothing: what succeeded is recorded, and a retry must not recompute it. With nothing left to
    plan, the execution stays as of the last plan's time."""
    planned = decision.models - set(excluded)
    if not planned:
        return replace(decision, models=planned, restate=(), messages=())
    return replace(
        decision,
        models=planned,
        select_models=_selection(planned, models),
        options=plan_options(request, False, clock),
        restate=(),
        messages=(),
    )


def held_back(
    excluded: Mapping[str, str],
    changed: Collection[str],
    parents: Mapping[str, Collection[str]],
    below: Callable[[str], Collection[str]],
) -> dict[str, str]:
    """The models a re-plan must leave out besides `excluded` (failed models and those below
    them, each with the failed model it descends from), each with the failed model that holds
    it back.

    A re-plan without a model plans it from the environment's version of its definition, but
    with its parents as planned: when a parent changed in this execution (`changed`: planned
    models whose version differs from the environment's), SQLMesh gives the left-out model a new
    version, builds no table for it (it is not selected for backfill, and other models are)
    and then fails promoting its view ("Table ... does not exist", SQLMesh 0.236; the same call
    in raw SQLMesh fails alike). So every changed ancestor of a left-out model stays out too,
    with everything below it (planned from the environment's versions again, what they read
    must not have changed either), until nothing left out has a changed ancestor."""
    left_out = set(excluded)
    held: dict[str, str] = {}
    pending = deque(sorted(excluded.items()))
    while pending:
        name, by = pending.popleft()
        for ancestor in _ancestors(name, parents) & set(changed):
            for model in (ancestor, *below(ancestor)):
                if model not in left_out:
                    left_out.add(model)
                    held[model] = by
                    pending.append((model, by))
    return held


def _ancestors(name: str, parents: Mapping[str, Collection[str]]) -> set[str]:
    found: set[str] = set()
    pending = list(parents.get(name, ()))
    while pending:
        parent = pending.pop()
        if parent not in found:
            found.add(parent)
            pending.extend(parents.get(parent, ()))
    return found


def _selection(names: frozenset[str], models: Collection[str]) -> tuple[str, ...] | None:
    """SQLMesh's `select_models`: None when `names` cover every model."""
    return None if names >= set(models) else tuple(sorted(names))


def _restatable(
    request: ExecutionRequest, models: Collection[str], deployed: Collection[str]
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The selected models a restatement can recompute: those the environment has. SQLMesh
    refuses to restate in an environment that does not exist yet ("must exist for this
    operation"); a model not deployed has nothing to recompute and is simply built."""
    if not request.restate:
        return frozenset(), ()
    new = sorted(n for n in request.selected if n in models and n not in deployed)
    messages = (
        (
            f"Not restating {', '.join(new)}: environment {request.environment!r} has no "
            "version of them yet, so they are built instead",
        )
        if new
        else ()
    )
    return frozenset(n for n in request.selected if n in deployed), messages
