"""One SQLMesh execution in a child process, its outcomes streamed back as they happen.

SQLMesh holds the GIL for most of an execution. On a thread of the run worker it starved the asset
steps that report finished models (ADR 6), so it runs in its own interpreter: the parent sends the
request on stdin and reads JSON lines from a pipe (log lines, each model as soon as it is ready,
then the results). The child imports SQLMesh and mxm_dagster's SQLMesh side only, never Dagster.

The child ignores SIGINT and SIGTERM and finishes its plan even if the run worker goes away:
a plan cut short is exactly what would leave SQLMesh state half-applied. SIGKILL of the run's
process group still stops it, and the kernel then drops its locks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from mxm_dagster.console import OutcomeRecorder
from mxm_dagster.locks import file_lock
from mxm_dagster.planner import ExecutionRequest, Planner
from mxm_dagster.project import SQLMeshProject
from mxm_dagster.results import ExecutionResults, ModelOutcome
from mxm_dagster.sqlmesh_api import close_context, load_models
from mxm_dagster.warehouse import wait_until_writable

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


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
                    "path": str(self.project.path),
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
            SQLMeshProject(Path(project["path"]), project["gateway"], project["environment"]),
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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__, str(write_fd)],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=env,
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


class _Channel:
    """The child's side of the pipe; safe from SQLMesh's worker threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._open = True

    def send(self, kind: str, **payload: Any) -> None:
        line = json.dumps({"kind": kind, **payload}).encode() + b"\n"
        with self._lock:
            if not self._open:
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except BrokenPipeError:
                self._open = False  # the run worker is gone; SQLMesh still finishes its plan


def _execute(job: SQLMeshJob, channel: _Channel) -> ExecutionResults:
    def log(message: str) -> None:
        channel.send("log", message=message)

    def model_ready(outcome: ModelOutcome) -> None:
        channel.send("ready", outcome=asdict(outcome))

    project = job.project
    spec = project.load_spec()  # from the cache the code server wrote
    recorder = OutcomeRecorder(log=log)
    with file_lock(
        project.lock_path,
        timeout_seconds=job.lock_timeout_seconds,
        on_wait=log,
        what="SQLMesh project lock",
    ):
        if project.warehouse_path is not None:
            wait_until_writable(project.warehouse_path, job.warehouse_wait_seconds, log)
        fingerprint = project.fingerprint()  # the files the Context is about to load
        sqlmesh_context = project.open_context(recorder, load=False)
        try:
            planner = Planner(
                sqlmesh_context,
                spec,
                recorder,
                model_ready,
                load_models=lambda: load_models(sqlmesh_context, project.path),
            )
            results = planner.execute(job.request, project.known_plan_id(fingerprint))
        finally:
            close_context(sqlmesh_context)
        # files edited while SQLMesh loaded them may not be what it planned: remember nothing
        if planner.serving_plan_id is not None and project.fingerprint() == fingerprint:
            project.remember_plan_id(fingerprint, planner.serving_plan_id)
        return results


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel = _Channel(os.fdopen(int(sys.argv[1]), "wb"))
    job = SQLMeshJob.from_json(sys.stdin.buffer.readline().decode())
    try:
        results = _execute(job, channel)
    except Exception as exc:
        traceback.print_exc()
        channel.send("error", error=f"{type(exc).__name__}: {exc}")
        return
    channel.send("done", results=asdict(results))


if __name__ == "__main__":
    main()
