"""Typed outcome records of SQLMesh executions, serialisable for every step process."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict

from mxm_dagster.common.files import write_atomically


class ModelStatus(StrEnum):
    EVALUATED = "evaluated"  # SQLMesh computed at least one interval in this execution
    # SQLMesh had every interval due by the model's cron as of the execution time, and did not
    # evaluate the model. Past the model's `end` nothing is due: an ended model with every
    # interval up to its end recorded is up to date (`ModelOutcome.reason` says it ended)
    UP_TO_DATE = "up_to_date"
    AUDITED = "audited"  # audit-only re-run: SQLMesh ran the audits on existing data, none changed
    # SQLMesh left due intervals missing without an error (a signal not ready, upstream not
    # filled): `ModelOutcome.reason` says why
    NOT_FILLED = "not_filled"
    FAILED = "failed"  # evaluation or a blocking audit failed
    SKIPPED = "skipped"  # not evaluated because an upstream model failed


@dataclass(frozen=True)
class AuditOutcome:
    """The result of one audit that actually ran (SQLMesh reports no audit it did not run)."""

    name: str
    passed: bool
    blocking: bool
    failed_rows: int = 0
    query: str | None = None
    check_name: str = ""  # the Dagster check this audit reports to; set once matched to the model
    failed_batches: int = 0  # interval batches it failed in; `failed_rows` sums over them
    #: Run on the data the environment already held, not on data written in this execution
    on_unchanged_data: bool = False


class TableInfo(TypedDict, total=False):
    """Where a model's data is, as SQLMesh names it; empty when unknown (a standalone audit has no
    table), without `view` when the environment's view names are not known yet. The keys are
    `ModelOutcome`'s fields of the same names."""

    snapshot_version: str
    fingerprint: str
    physical_table: str
    view: str


@dataclass
class ModelOutcome:
    model: str
    status: ModelStatus
    selected: bool = True
    error: str | None = None
    failed_upstream: str | None = None
    audits: list[AuditOutcome] = field(default_factory=list)
    intervals: list[tuple[int, int]] = field(
        default_factory=list
    )  # epoch milliseconds [start, end)
    duration_ms: int | None = None
    snapshot_version: str | None = None
    fingerprint: str | None = None
    physical_table: str | None = None
    view: str | None = None
    row_count: int | None = None
    # True when reported as soon as the data was written, before SQLMesh promoted the environment
    reported_before_promotion: bool = False
    #: `not_filled`: why due intervals are still missing; `up_to_date` past the model's end:
    #: that it ended, and when
    reason: str | None = None
    #: SQLMesh restated the model in this execution and evaluated it: a model the run restated,
    #: or one below it (SQLMesh restates every model downstream of a restated one)
    restated: bool = False
    #: `skipped` although evaluated: failure isolation left it out of the re-plan because the
    #: failed model named here reads it (docs/adr/0004, what SQLMesh cannot promote)
    held_back_by: str | None = None
    #: What the environment serves of the model, from SQLMesh's state once the model was written
    #: (its table, intervals and their last alteration): Dagster's data version (ADR 15). None
    #: when the environment does not serve the model
    data_version: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelOutcome:
        raw = dict(raw)
        raw["status"] = ModelStatus(raw["status"])
        raw["audits"] = [AuditOutcome(**a) for a in raw.get("audits", [])]
        raw["intervals"] = [tuple(i) for i in raw.get("intervals", [])]
        return cls(**raw)


@dataclass
class ExecutionResults:
    """Everything one SQLMesh execution did for one Dagster run."""

    execution_id: str
    environment: str
    models: dict[str, ModelOutcome]
    started_at: float
    finished_at: float
    plan_attempts: int = 1
    command: str = "plan"  # "run" when the environment already served the project (no plan)
    restated: bool = False  # the run asked for a restatement; which models: `ModelOutcome.restated`
    window: tuple[int, int] | None = None  # [start, end) epoch ms of a partitioned run
    #: SQLMesh's "now" for the execution (epoch ms): what the crons were due as of
    execution_time: int | None = None

    @property
    def partitioned(self) -> bool:
        return self.window is not None

    def outcome(self, model: str) -> ModelOutcome | None:
        return self.models.get(model)

    @classmethod
    def not_started(cls, environment: str, models: set[str], error: str) -> ExecutionResults:
        """An execution that failed before SQLMesh evaluated anything: every model failed."""
        now = time.time()
        outcomes = {
            m: ModelOutcome(model=m, status=ModelStatus.FAILED, error=error) for m in models
        }
        return cls(uuid.uuid4().hex, environment, outcomes, now, now, plan_attempts=0)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExecutionResults:
        raw = dict(raw)
        raw["models"] = {k: ModelOutcome.from_dict(v) for k, v in raw["models"].items()}
        if raw.get("window") is not None:
            raw["window"] = tuple(raw["window"])
        return cls(**raw)


@dataclass
class RunResults:
    """The SQLMesh executions of one Dagster run, as stored for every step process: normally one;
    another only for models that had to wait for a non-SQLMesh asset of the same run."""

    executions: list[ExecutionResults] = field(default_factory=list)

    def considered(self) -> set[str]:
        return {name for execution in self.executions for name in execution.models}

    def write(self, path: Path) -> None:
        """Write atomically: a reader in another process never sees half a file."""
        write_atomically(path, json.dumps([asdict(e) for e in self.executions], sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> RunResults:
        raw = json.loads(path.read_text())
        return cls([ExecutionResults.from_dict(e) for e in raw])
