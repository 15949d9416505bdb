"""What a plan preview found: SQLMesh's plan for a selection, built and never applied (ADR 18).

The SQLMesh child fills these from SQLMesh's own objects (the plan's categorised snapshots, its
context diff, its missing intervals, the destructive changes its builder refused); the run
worker turns them into asset observations. Plain data, so neither side imports the other's
library.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: `ModelPreview.change` values, from SQLMesh's categories (`SnapshotChangeCategory`) and how the
#: model entered the plan; "forward-only" is a direct change SQLMesh applies forward only.
CHANGES = (
    "added",
    "breaking",
    "non-breaking",
    "forward-only",
    "metadata",
    "indirect breaking",
    "indirect non-breaking",
    "removed",
    "unchanged",
)


@dataclass
class ModelPreview:
    """One model in the plan: how it changed, and what a run would fill of it."""

    model: str
    change: str  # one of CHANGES
    #: SQLMesh's `SnapshotChangeCategory` name (BREAKING, INDIRECT_NON_BREAKING, ...), None for
    #: a model the plan does not change
    category: str | None = None
    forward_only: bool = False  # SQLMesh applies the change going forward, without a rebuild
    #: the directly modified models this one is indirectly modified by
    modified_by: list[str] = field(default_factory=list)
    diff: str = ""  # SQLMesh's unified text diff of the model's definition
    #: [start, end) epoch ms: what SQLMesh would evaluate, restated intervals included
    intervals: list[tuple[int, int]] = field(default_factory=list)
    restated: bool = False
    #: SQLMesh's account of a destructive change it refuses (the run would be refused), if any
    refused: str = ""


@dataclass
class PlanPreview:
    """The whole preview: the environment and time it was planned as of, each model that the
    plan changes, fills or refuses, and what else a run would do or say."""

    environment: str
    execution_time: int  # epoch ms, SQLMesh's "now" for the plan
    models: dict[str, ModelPreview] = field(default_factory=dict)
    #: lines the run's log would carry before SQLMesh starts (restatement below, ...)
    messages: list[str] = field(default_factory=list)
    #: the plan SQLMesh would refuse outright (not for a destructive change): its error
    error: str | None = None
    #: a run fills, after this plan, what each cron made due (`sqlmesh run`); included above
    fills_after: bool = False

    @property
    def refused(self) -> list[str]:
        """The models whose destructive change makes SQLMesh refuse the run's plan."""
        return sorted(name for name, m in self.models.items() if m.refused)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PlanPreview:
        raw = dict(raw)
        models = {
            name: ModelPreview(**{**m, "intervals": [tuple(i) for i in m.get("intervals", [])]})
            for name, m in raw.pop("models", {}).items()
        }
        return cls(models=models, **raw)


def add_due_after(
    previews: dict[str, ModelPreview], due: Mapping[str, ModelPreview], models: Collection[str]
) -> None:
    """Add to `previews` (a plan without `run`) the intervals of `models` that `due` (the same
    plan with `run`) fills and the first does not cover: what a run fills after such a plan,
    when it goes on with `sqlmesh run` for what each cron made due (`Decision.fill_after`)."""
    for name in models:
        extra = due.get(name)
        if extra is None or not extra.intervals:
            continue
        found = previews.setdefault(name, ModelPreview(model=name, change="unchanged"))
        planned = list(found.intervals)
        later = [i for i in extra.intervals if not any(a <= i[0] and i[1] <= b for a, b in planned)]
        found.intervals = sorted(set(planned) | set(later))
