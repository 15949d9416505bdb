"""A SQLMesh job for the child process (`mxm_dagster.child.execute`), and how the run worker
runs one: the job goes in on stdin, JSON lines come back on a pipe (ADR 6).

This is the run worker's side, so it imports nothing of SQLMesh: the Dagster processes of a run
never pay SQLMesh's import or hold its memory.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from mxm_dagster.common.interpreter import child_command, child_env
from mxm_dagster.common.project import SQLMeshProject
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.records.results import ExecutionResults, ModelOutcome

CHILD_MODULE = "mxm_dagster.child.execute"


@dataclass(frozen=True)
class SQLMeshJob:
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
                },
                "request": self.request.to_dict(),
                "lock_timeout_seconds": self.lock_timeout_seconds,
                "warehouse_wait_seconds": self.warehouse_wait_seconds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SQLMeshJob:
        raw = json.loads(text)
        project = raw["project"]
        return cls(
            SQLMeshProject.at(project["location"], project["gateway"], project["environment"]),
            ExecutionRequest.from_dict(raw["request"]),
            raw["lock_timeout_seconds"],
            raw["warehouse_wait_seconds"],
        )


class ExecutionFailed(Exception):
    """The child reported an error before it had results; str() is its `Type: message`."""


def run_in_child(
    job: SQLMeshJob,
    on_log: Callable[[str], None],
    on_model_ready: Callable[[ModelOutcome], None],
) -> ExecutionResults:
    """Run `job` in a child interpreter; call back as its messages arrive."""
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen(
            child_command(CHILD_MODULE, str(write_fd)),
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=child_env(),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    assert child.stdin is not None
    try:
        child.stdin.write(job.to_json().encode() + b"\n")
        child.stdin.close()
    except BrokenPipeError:
        pass  # the child died before reading its job; its exit code says so below
    results: ExecutionResults | None = None
    error: str | None = None
    try:
        with os.fdopen(read_fd, "rb") as messages:
            for line in messages:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the child's death
                kind = message["kind"]
                if kind == "log":
                    on_log(message["message"])
                elif kind == "ready":
                    on_model_ready(ModelOutcome.from_dict(message["outcome"]))
                elif kind == "done":
                    results = ExecutionResults.from_dict(message["results"])
                elif kind == "error":
                    error = message["error"]
    finally:
        code = child.wait()
    if results is not None:
        return results
    if error is None and code < 0:
        error = f"the SQLMesh process was killed by signal {-code}"
    raise ExecutionFailed(error or f"the SQLMesh process ended with exit code {code}")
