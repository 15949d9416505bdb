"""One SQLMesh execution in a child process, its outcomes streamed back as they happen.

SQLMesh holds the GIL for most of an execution. On a thread of the run worker it starved the asset
steps that report finished models (ADR 6), so it runs in its own interpreter: the parent sends the
request on stdin and reads JSON lines from a pipe (log lines, each model as soon as it is ready,
then the results).

The child ignores SIGINT and finishes its plan even if the run worker goes away: a plan cut short
anywhere is what would leave SQLMesh state half-applied. SIGTERM, which the run worker sends when
Dagster terminates the run or the execution outlives its bound, stops SQLMesh at a safe point
(`child.cancellation`) and the child exits saying so; the run worker SIGKILLs it after a grace
period, and the kernel then drops its locks. A child whose run worker is gone stops itself the
same way once its execution bound has passed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from typing import IO, Any

from mxm_dagster.child.cancellation import Cancellation, ExecutionCancelled
from mxm_dagster.child.plan.execution import execute_request
from mxm_dagster.child.plan.preview import preview_plan
from mxm_dagster.child.project import config, open_context
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.child.sqlmesh_api import close_context, load_models, postgres_state
from mxm_dagster.child.state_lock import state_lock
from mxm_dagster.child.unit_tests import check_unit_tests
from mxm_dagster.child.warehouse import wait_until_writable
from mxm_dagster.common.garbage import built_to_last
from mxm_dagster.common.locks import FileLock
from mxm_dagster.project.protocol import STOP_GRACE_SECONDS, ChildOrder, MessageKind
from mxm_dagster.records.preview import PlanPreview
from mxm_dagster.records.results import ExecutionResults, ModelOutcome


class _Channel:
    """The child's side of the pipe; safe from SQLMesh's worker threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._open = True

    def send(self, kind: MessageKind, **payload: Any) -> None:
        line = json.dumps({"kind": kind, **payload}).encode() + b"\n"
        with self._lock:
            if not self._open:
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except BrokenPipeError:
                self._open = False  # the run worker is gone; SQLMesh still finishes its plan


def _stop_self_after(seconds: float) -> None:
    """The run worker enforces the execution bound; should it be gone, SIGTERM ourselves a grace
    period later, and give up for good (as SIGKILL would) one more grace period on."""
    for delay, stop in (
        (seconds + STOP_GRACE_SECONDS, lambda: os.kill(os.getpid(), signal.SIGTERM)),
        (seconds + 3 * STOP_GRACE_SECONDS, lambda: os._exit(70)),
    ):
        timer = threading.Timer(delay, stop)
        timer.daemon = True
        timer.start()


@contextmanager
def _turn(
    order: ChildOrder, log: Callable[[str], None], cancellation: Cancellation
) -> Iterator[None]:
    """The run's turn on the project: the project lock, the state database's lock (ADR 13) and
    a free warehouse, waited for while a SIGTERM may still stop the waits; held for the block.
    A preview takes the same turn, so it never reads a state a run is halfway through writing."""
    project = order.project
    lock = FileLock(project.lock_path, "SQLMesh project lock")
    with ExitStack() as held:
        with cancellation.interruptible():  # nothing written yet: a SIGTERM may stop the waits
            lock.acquire(order.lock_timeout_seconds, log)
        held.callback(lock.release)
        with cancellation.interruptible():
            # runs on other machines share no file lock, only the state database (ADR 13)
            shared_state = postgres_state(config(project), project.gateway)
            if shared_state is not None:
                arguments, schema = shared_state
                held.enter_context(
                    state_lock(
                        arguments, schema, project.environment, order.lock_timeout_seconds, log
                    )
                )
            if project.warehouse_path is not None:
                wait_until_writable(project.warehouse_path, order.warehouse_wait_seconds, log)
        yield


def _execute(order: ChildOrder, channel: _Channel, cancellation: Cancellation) -> ExecutionResults:
    def log(message: str) -> None:
        channel.send(MessageKind.LOG, message=message)

    def model_ready(outcome: ModelOutcome) -> None:
        channel.send(MessageKind.READY, outcome=asdict(outcome))

    project = order.project
    spec = project.load_spec()  # from the cache the code server wrote
    recorder = OutcomeRecorder(log=log, cancellation=cancellation)
    with _turn(order, log, cancellation):
        channel.send(MessageKind.STARTED)
        _stop_self_after(order.execution_timeout_seconds)
        fingerprint = project.fingerprint()  # the files the Context is about to load
        sqlmesh_context = open_context(project, recorder, load=False)
        loaded = False

        def load() -> None:  # once: the unit tests need the project, and so may the plan
            nonlocal loaded
            if not loaded:
                with built_to_last():  # thousands of models, kept for the run (ADR 23)
                    load_models(sqlmesh_context, project.path)
                loaded = True

        try:
            if order.request.unit_tests:
                load()
                check_unit_tests(sqlmesh_context, log)
            results, serving_plan_id = execute_request(
                sqlmesh_context,
                spec,
                recorder,
                order.request,
                project.known_plan_id(fingerprint),
                load,
                model_ready,
            )
        finally:
            close_context(sqlmesh_context)
        # files edited while SQLMesh loaded them may not be what it planned: remember nothing
        if serving_plan_id is not None and project.fingerprint() == fingerprint:
            project.remember_plan_id(fingerprint, serving_plan_id)
        if cancellation.requested:
            log("The run was terminated while SQLMesh could not stop safely; it finished instead")
        return results


def _preview(order: ChildOrder, channel: _Channel, cancellation: Cancellation) -> PlanPreview:
    """The plan the order's request would apply, built under the run's locks and not applied:
    no snapshot, interval, environment or table is written, and no serving marker (ADR 18)."""

    def log(message: str) -> None:
        channel.send(MessageKind.LOG, message=message)

    project = order.project
    spec = project.load_spec()
    recorder = OutcomeRecorder(log=log, cancellation=cancellation)
    with _turn(order, log, cancellation):
        channel.send(MessageKind.STARTED)
        _stop_self_after(order.execution_timeout_seconds)
        sqlmesh_context = open_context(project, recorder, load=False)
        try:
            return preview_plan(
                sqlmesh_context,
                spec,
                recorder,
                order.request,
                lambda: load_models(sqlmesh_context, project.path),
            )
        finally:
            close_context(sqlmesh_context)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cancellation = Cancellation()
    cancellation.install()
    channel = _Channel(os.fdopen(int(sys.argv[1]), "wb"))
    order = ChildOrder.from_json(sys.stdin.buffer.readline().decode())
    try:
        if order.preview:
            preview = _preview(order, channel, cancellation)
            channel.send(MessageKind.PREVIEW, preview=preview.to_dict())
            return
        results = _execute(order, channel, cancellation)
    except ExecutionCancelled as exc:
        channel.send(MessageKind.CANCELLED, error=str(exc))
        return
    except Exception as exc:
        traceback.print_exc()
        channel.send(MessageKind.ERROR, error=f"{type(exc).__name__}: {exc}")
        return
    channel.send(MessageKind.DONE, results=asdict(results))


if __name__ == "__main__":
    main()
