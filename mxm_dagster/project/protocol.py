"""What the run worker sends the SQLMesh child (`mxm_dagster.child.execute`) and what comes back.

The order goes in on stdin as one JSON line; JSON lines come back on a pipe, each a `MessageKind`
with its payload (ADR 6).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.request import ExecutionRequest

# After SIGTERM the child has this long to stop at a safe point before it is killed (SIGKILL).
STOP_GRACE_SECONDS = 10.0
# The child's start before it waits for locks: interpreter, imports, the project's spec.
START_MARGIN_SECONDS = 120.0


class MessageKind(StrEnum):
    """The `kind` of one line on the pipe from the child."""

    LOG = "log"  # payload `message`: a line for the run's log
    STARTED = "started"  # no payload: locks held, SQLMesh starts; the execution bound counts
    READY = "ready"  # payload `outcome`: a model's final outcome, before the run ends
    DONE = "done"  # payload `results`: the whole execution's results, the last line
    ERROR = "error"  # payload `error`: `Type: message` of what stopped the child before results
    CANCELLED = "cancelled"  # payload `error`: SIGTERM stopped SQLMesh at a safe point, unpromoted
    PREVIEW = "preview"  # payload `preview`: a preview order's `PlanPreview`, the last line


def execution_bound_seconds(
    lock_timeout_seconds: float, warehouse_wait_seconds: float, execution_timeout_seconds: float
) -> float:
    """The longest one execution can take, from the child's start to its end, stopping included."""
    start = START_MARGIN_SECONDS + lock_timeout_seconds + warehouse_wait_seconds
    return start + execution_timeout_seconds + 2 * STOP_GRACE_SECONDS


@dataclass(frozen=True)
class ChildOrder:
    """What the child needs: which project, what to do, how long to wait for locks, and how long
    SQLMesh may take once it has them (`execution_timeout_seconds`)."""

    project: SQLMeshProject
    request: ExecutionRequest
    lock_timeout_seconds: float
    warehouse_wait_seconds: float
    execution_timeout_seconds: float
    #: build the plan the request would apply and reply with it, applying nothing (ADR 18)
    preview: bool = False

    def start_bound_seconds(self) -> float:
        """How long the child may take to announce `STARTED`: its own lock waits are bounded."""
        return START_MARGIN_SECONDS + self.lock_timeout_seconds + self.warehouse_wait_seconds

    def bound_seconds(self) -> float:
        """The longest one execution can take, stopping included: what any wait for it allows."""
        return execution_bound_seconds(
            self.lock_timeout_seconds, self.warehouse_wait_seconds, self.execution_timeout_seconds
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "project": {
                    "location": self.project.location,
                    "gateway": self.project.gateway,
                    "environment": self.project.environment,
                    "cache_dir": str(self.project.cache_dir) if self.project.cache_dir else None,
                },
                "request": self.request.to_dict(),
                "lock_timeout_seconds": self.lock_timeout_seconds,
                "warehouse_wait_seconds": self.warehouse_wait_seconds,
                "execution_timeout_seconds": self.execution_timeout_seconds,
                "preview": self.preview,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ChildOrder:
        raw = json.loads(text)
        project = raw["project"]
        return cls(
            SQLMeshProject.at(
                project["location"],
                project["gateway"],
                project["environment"],
                project.get("cache_dir"),
            ),
            ExecutionRequest.from_dict(raw["request"]),
            raw["lock_timeout_seconds"],
            raw["warehouse_wait_seconds"],
            raw["execution_timeout_seconds"],
            raw.get("preview", False),
        )
