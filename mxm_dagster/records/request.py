"""What a run asks SQLMesh to do, in a form that crosses into the SQLMesh child process.

Kept apart from the planner so that the Dagster side can build a request without importing SQLMesh.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from mxm_dagster.common.times import from_ms
from mxm_dagster.records.results import ExecutionResults

PROD = "prod"  # SQLMesh's production environment


@dataclass
class ExecutionRequest:
    """What a run asks SQLMesh to do."""

    environment: str
    selected: set[str]
    #: Models whose checks alone the run selected: their audits run on the environment's current
    #: data, and SQLMesh evaluates nothing for them (docs/adr/0012)
    checks_only: set[str] = field(default_factory=set)
    #: Also audit, on their current data, selected models SQLMesh found up to date (ADR 12; off
    #: by default since ADR 19: SQLMesh audited that data when it wrote it)
    audit_unchanged: bool = False
    restate: bool = False
    row_counts: bool = True
    unit_tests: bool = False  # run the project's SQLMesh unit tests first; any failure: no plan
    window: tuple[int, int] | None = None  # [start, end) epoch ms of a partitioned run
    plan_options: dict[str, object] = field(default_factory=dict)
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)

    @property
    def may_run_without_plan(self) -> bool:
        """Whether `sqlmesh run` does what a plan would: fill missing intervals, nothing else."""
        return not self.restate and self.window is None

    @property
    def runs_due(self) -> bool:
        """Whether a plan also fills what each model's cron made due (`sqlmesh plan --run`, see
        docs/adr/0007): every plan but a partition window's, which asks SQLMesh for that window."""
        return self.window is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the SQLMesh child process."""
        return {
            **asdict(self),
            "selected": sorted(self.selected),
            "checks_only": sorted(self.checks_only),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExecutionRequest:
        raw = dict(raw)
        raw["selected"] = set(raw["selected"])
        raw["checks_only"] = set(raw.get("checks_only", ()))
        if raw.get("window") is not None:
            raw["window"] = tuple(raw["window"])
        return cls(**raw)

    def results_without_models(self) -> ExecutionResults:
        """The results record before any model has finished: only the execution's identity (id,
        environment, start, window), which outcomes reported before the end cite."""
        return ExecutionResults(
            execution_id=self.execution_id,
            environment=self.environment,
            models={},
            started_at=self.started_at,
            finished_at=0.0,
            restated=self.restate,
            window=self.window,
        )

    def plan_window(self, restating: bool) -> dict[str, Any]:
        """How a partitioned run's time span reaches SQLMesh's plan (see docs/adr/0005).

        Restatements and non-prod environments take the span as start/end. A prod plan refuses
        start/end without restatement, so it fills missing intervals up to the span's end by
        planning as of that time (`execution_time`); earlier gaps are filled too.
        """
        if self.window is None:
            return {}
        start, end = (from_ms(ms) for ms in self.window)
        if restating or self.environment != PROD:
            return {"start": start, "end": end}
        return {"execution_time": end}
