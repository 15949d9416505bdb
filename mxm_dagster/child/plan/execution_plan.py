"""What one execution will do, as a value: decided before SQLMesh is asked to do anything.

The planner (`planner.plan_execution`) makes it from the request and a few answers read from
SQLMesh's state; the executor does what it says, and the audit pass audits what it names once
the outcomes are known. It holds plain values only, so it prints and compares without DuckDB
or a SQLMesh Context (tests/unit/child).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mxm_dagster.child.plan.decision import Decision


@dataclass(frozen=True)
class StandaloneAudit:
    """A standalone audit (its own SQLMesh node) whose check is on `model`. SQLMesh's selector
    knows models only, so a call that selects models (a selection, a re-plan without failed
    models, the run of what is still due) never runs it: the executor then does, once `model`
    and every model it `reads` are in the environment and did not fail."""

    name: str
    model: str
    reads: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CurrentDataAudit:
    """A model whose audits the audit pass runs on the data the environment holds, if SQLMesh
    evaluated nothing of it in this execution and nothing due is missing (docs/adr/0012)."""

    model: str
    why: str


@dataclass(frozen=True)
class ExecutionPlan:
    """What SQLMesh is asked to do for one request, and what is done around it."""

    environment: str
    #: The SQLMesh call, `sqlmesh run` or a plan; None when only checks were selected
    call: Decision | None
    why: str  # why this path, in a sentence
    #: SQLMesh's now when the execution started (epoch ms): what a re-plan is as of by default
    clock: int
    #: What SQLMesh fills as of: the request's, its window's end in prod, else `clock`
    execution_time: Any
    #: The environment's models when the plan was decided (a run does not read them)
    deployed: frozenset[str] = frozenset()
    standalone_audits: tuple[StandaloneAudit, ...] = ()
    current_data_audits: tuple[CurrentDataAudit, ...] = ()

    @property
    def command(self) -> Literal["run", "plan", "audit"]:
        """`audit`: no plan and no run, the selected checks' audits on the current data."""
        return "audit" if self.call is None else self.call.command

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        """The plan in words, one fact a line: what a reader of a run's log or a test wants."""
        call = self.call
        head = f"{self.command} in {self.environment!r} as of {self.execution_time}: {self.why}"
        lines = [head]
        if call is not None:
            lines.append(f"models: {_names(call.models) or 'none'}")
            lines.append(
                "select: every model"
                if call.select_models is None
                else f"select: {_names(call.select_models)}"
            )
            start, end = call.options.get("start"), call.options.get("end")
            if start is not None or end is not None:
                lines.append(f"window: {start} to {end}")
            if call.restate:
                lines.append(f"restate: {_names(call.restate)}")
            if call.below_restated:
                lines.append(f"restated below: {_names(call.below_restated)}")
            if call.run_due:
                lines.append("fills what each model's cron made due (run=True)")
            if call.fill_after:
                lines.append("deferred: what is still due is run after the plan")
            if not call.report_early:
                lines.append("no model is reported before the end")
            lines.extend(f"message: {message}" for message in call.messages)
        lines.extend(
            f"standalone audit: {audit.name} on {audit.model}, run by us if the call selects models"
            for audit in self.standalone_audits
        )
        lines.extend(
            f"audit current data: {audit.model} ({audit.why})" for audit in self.current_data_audits
        )
        return lines


def _names(names: frozenset[str] | tuple[str, ...]) -> str:
    return ", ".join(sorted(names))
