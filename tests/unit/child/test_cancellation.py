"""Where a SIGTERM stops the SQLMesh child: only at its safe points (child/cancellation.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from mxm_dagster.child.cancellation import Cancellation, ExecutionCancelled


@pytest.fixture
def cancellation() -> Iterator[Cancellation]:
    previous = signal.getsignal(signal.SIGTERM)
    handler = Cancellation()
    handler.install()
    try:
        yield handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sigterm_and_wait() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # the handler runs in this (the main) thread at the next bytecode


def test_a_sigterm_inside_a_model_stops_at_once(cancellation: Cancellation) -> None:
    cancellation.model_started()
    with pytest.raises(ExecutionCancelled):
        _sigterm_and_wait()
    assert cancellation.requested


def test_a_sigterm_elsewhere_waits_for_the_next_model(cancellation: Cancellation) -> None:
    _sigterm_and_wait()  # planning, state writes, promotion: nothing raised
    assert cancellation.requested
    with pytest.raises(ExecutionCancelled):
        cancellation.model_started()


def test_a_model_that_ended_is_not_interrupted_afterwards(cancellation: Cancellation) -> None:
    cancellation.model_started()
    cancellation.model_ended()
    _sigterm_and_wait()
    assert cancellation.requested


def test_waits_are_interruptible_and_a_stopped_run_does_not_start_one(
    cancellation: Cancellation,
) -> None:
    with pytest.raises(ExecutionCancelled), cancellation.interruptible():
        _sigterm_and_wait()
    with pytest.raises(ExecutionCancelled), cancellation.interruptible():
        pass


def test_cancellation_is_not_an_exception_sqlmesh_would_take_for_a_failed_model() -> None:
    assert not issubclass(ExecutionCancelled, Exception)
