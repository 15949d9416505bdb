"""Stopping SQLMesh at a safe point when the run worker sends SIGTERM (ADR 6).

A plan is only half-applied if it is cut short while SQLMesh writes its state or promotes views.
So the child stops only where nothing is being written, or where SQLMesh itself would stop for a
failed model: while it waits for its locks, inside a model's evaluation (a Python model, or
between the statements of the main thread's query), and where the next model would start, the
point where SQLMesh checks its own circuit breaker. SQLMesh then records no interval for the
model cut short, keeps the intervals of the models that finished, and promotes nothing. A signal
that comes at any other moment (planning, state writes, promotion) waits for the next such point;
if none comes, SQLMesh finishes and the results say what it did.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class ExecutionCancelled(BaseException):
    """SIGTERM stopped SQLMesh. A BaseException, so SQLMesh's per-model `except Exception` does
    not take it for one failed model and carry on with the others."""

    def __init__(self) -> None:
        super().__init__("the run was terminated: SQLMesh stopped at a safe point, unpromoted")


class Cancellation:
    """SIGTERM handling of the child's main thread, where SQLMesh evaluates (DuckDB runs one
    task at a time); worker threads of a concurrent gateway finish their model and stop SQLMesh
    where the next one would start."""

    def __init__(self) -> None:
        self.requested = False
        self._interruptible = False  # the main thread is where a SIGTERM may stop it at once

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        if self._interruptible:
            self._interruptible = False
            raise ExecutionCancelled

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stretch of the main thread that a SIGTERM may end by raising `ExecutionCancelled`."""
        if self.requested:
            raise ExecutionCancelled
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def model_started(self) -> None:
        """SQLMesh is about to evaluate a model: stop here if termination was asked for."""
        if self.requested:
            raise ExecutionCancelled
        if threading.current_thread() is threading.main_thread():
            self._interruptible = True

    def model_ended(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._interruptible = False
