"""What the run worker sends the SQLMesh child (`mxm_dagster.child.execute`) and what comes back.

The order goes in on stdin as one JSON line; JSON lines come back on a pipe, each a `MessageKind`
with its payload (ADR 6).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from mxm_dagster.common.project import SQLMeshProject
from mxm_dagster.records.request import ExecutionRequest


class MessageKind(StrEnum):
    """The `kind` of one line on the pipe from the child."""

    LOG = "log"  # payload `message`: a line for the run's log
    READY = "ready"  # payload `outcome`: a model's final outcome, before the run ends
    DONE = "done"  # payload `results`: the whole execution's results, the last line
    ERROR = "error"  # payload `error`: `Type: message` of what stopped the child before results


@dataclass(frozen=True)
class ChildOrder:
    """What the child needs: which project, what to do, how long to wait for locks."""

    project: SQLMeshProject
    request: ExecutionRequest
    lock_timeout_seconds: float
    warehouse_wait_seconds: float

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
        )
