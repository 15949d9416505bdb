"""Starting the SQLMesh child for a `ChildOrder` and reading its pipe, in the run worker (ADR 6).

No wait here is unbounded: the child has `ChildOrder.start_bound_seconds` to announce that SQLMesh
starts, then `execution_timeout_seconds` to finish. Past either, or when the run is terminated
(`ChildControl.stop`), the child gets SIGTERM and stops at a safe point; after a grace period it
gets SIGKILL.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from mxm_dagster.common.interpreter import child_command, child_env
from mxm_dagster.project.protocol import STOP_GRACE_SECONDS, ChildOrder, MessageKind
from mxm_dagster.records.preview import PlanPreview
from mxm_dagster.records.results import ExecutionResults, ModelOutcome

CHILD_MODULE = "mxm_dagster.child.execute"
_POLL_SECONDS = 0.5


class ExecutionFailed(Exception):
    """The child reported an error before it had results; str() is its `Type: message`."""


class ChildControl:
    """What the run worker's other threads may ask of a running child: to stop, with a reason."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.reason = ""

    def stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.reason = reason
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class _Reader:
    """The child's pipe read in bounded steps, so the loop can look at the clock between lines."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self.closed = False

    def lines(self, timeout: float) -> list[bytes]:
        if self.closed:
            return []
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return []
        chunk = os.read(self._fd, 65536)
        if not chunk:
            self.closed = True
            return [self._buffer] if self._buffer else []
        *complete, self._buffer = (self._buffer + chunk).split(b"\n")
        return complete


def run_in_child(
    order: ChildOrder,
    on_log: Callable[[str], None],
    on_model_ready: Callable[[ModelOutcome], None],
    control: ChildControl | None = None,
) -> ExecutionResults:
    """Run `order` in a child interpreter; call back as its messages arrive."""
    return ExecutionResults.from_dict(_converse(order, on_log, on_model_ready, control))


def preview_in_child(
    order: ChildOrder, on_log: Callable[[str], None], control: ChildControl | None = None
) -> PlanPreview:
    """The plan preview of a preview `order` (ADR 18), built by a SQLMesh child under the same
    locks and bounds as a run's execution."""
    return PlanPreview.from_dict(_converse(order, on_log, lambda _outcome: None, control))


def _converse(
    order: ChildOrder,
    on_log: Callable[[str], None],
    on_model_ready: Callable[[ModelOutcome], None],
    control: ChildControl | None,
) -> dict[str, Any]:
    """Start the child, hand it `order`, read its pipe until it ends: its last reply's payload
    (results or preview), else `ExecutionFailed` saying why there is none."""
    control = control or ChildControl()
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen(
            child_command(CHILD_MODULE, str(write_fd)),
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=child_env(),
            cwd=order.project.path,  # where the `sqlmesh` CLI runs (common/interpreter.py)
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    assert child.stdin is not None
    try:
        child.stdin.write(order.to_json().encode() + b"\n")
        child.stdin.close()
    except BrokenPipeError:
        pass  # the child died before reading its order; its exit code says so below
    results: dict[str, Any] | None = None
    error: str | None = None
    cancelled = started = False
    deadline = time.monotonic() + order.start_bound_seconds()
    stopped_at: float | None = None  # when SIGTERM went out
    reader = _Reader(read_fd)
    try:
        while not reader.closed:
            for line in reader.lines(_POLL_SECONDS):
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the child's death
                kind = message["kind"]
                if kind == MessageKind.LOG:
                    on_log(message["message"])
                elif kind == MessageKind.STARTED:
                    started = True
                    deadline = time.monotonic() + order.execution_timeout_seconds
                elif kind == MessageKind.READY:
                    on_model_ready(ModelOutcome.from_dict(message["outcome"]))
                elif kind == MessageKind.DONE:
                    results = message["results"]
                elif kind == MessageKind.PREVIEW:
                    results = message["preview"]
                elif kind == MessageKind.ERROR:
                    error = message["error"]
                elif kind == MessageKind.CANCELLED:
                    cancelled = True
            now = time.monotonic()
            if stopped_at is None and now >= deadline:
                control.stop(_timeout_reason(order, started))
            if stopped_at is None and control.stopping:
                on_log(f"Stopping SQLMesh: {control.reason}")
                _signal(child, signal.SIGTERM)
                stopped_at = now
            if stopped_at is not None and now - stopped_at > STOP_GRACE_SECONDS:
                on_log(f"SQLMesh did not stop within {STOP_GRACE_SECONDS:.0f} s: killing it")
                _signal(child, signal.SIGKILL)
                break
    finally:
        os.close(read_fd)
        code = _reap(child)
    if results is not None:
        return results
    if control.stopping:
        if cancelled:
            how = "it stopped at a safe point, promoting nothing"
        elif code == -signal.SIGKILL:
            grace = f"{STOP_GRACE_SECONDS:.0f} s"
            how = f"it did not stop within {grace} and was killed (exit code {code})"
        else:
            how = f"it ended with exit code {code}"
        raise ExecutionFailed(f"{control.reason}; {how}")
    if error is None and code < 0:
        error = f"the SQLMesh process was killed by signal {-code}"
    raise ExecutionFailed(error or f"the SQLMesh process ended with exit code {code}")


def _timeout_reason(order: ChildOrder, started: bool) -> str:
    if started:
        return (
            "SQLMesh did not finish within execution_timeout_seconds="
            f"{order.execution_timeout_seconds:g}"
        )
    return (
        f"the SQLMesh process did not get to SQLMesh within {order.start_bound_seconds():g} s "
        "(its start and its lock waits)"
    )


def _signal(child: subprocess.Popen[bytes], signum: int) -> None:
    try:
        child.send_signal(signum)
    except ProcessLookupError:
        pass


def _reap(child: subprocess.Popen[bytes]) -> int:
    """The child's exit code; it closed its pipe, so it is ending: SIGKILL if it lingers."""
    try:
        return child.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal(child, signal.SIGKILL)
        return child.wait()
