"""`SharedExecution`: one SQLMesh execution that the steps of a run share in this process.

The SQLMesh thread fills it (messages, each model's outcome as it is ready, then the results);
asset steps wait on it for their own model and claim, once per process, what the execution owes
(records of skipped steps, the finalization). The process keeps the executions of every run and
project it has seen, so each step finds the one of its project covering its model: two SQLMesh
projects of one code location may both have a model `a.b`, and each runs its own execution.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus

PROGRESS_INTERVAL_SECONDS = 2.0
# After these SQLMesh materializes nothing more for the model in this execution.
FINAL_STATUSES = frozenset({ModelStatus.FAILED, ModelStatus.SKIPPED})


class ExecutionWaitTimeout(Exception):
    """The SQLMesh thread gave no results within the execution's bound (it should never)."""


class SharedExecution:
    """One SQLMesh execution as this process sees it: running on a thread, or read from disk."""

    def __init__(self, results_without_models: ExecutionResults, models: set[str]) -> None:
        self.results_without_models = results_without_models
        self.models = models
        self.results: ExecutionResults | None = None
        self.thread: threading.Thread | None = None
        # Set where it is started: how long a wait for it may take, and how to stop its child.
        self.wait_bound_seconds: float | None = None
        self.stop_child: Callable[[str], None] | None = None
        self._early: dict[str, ModelOutcome] = {}
        self._messages: list[str] = []
        self._progress: list[str] = []
        self._last_drain = 0.0
        self._reported: set[str] = set()
        self._recorded_for_skipped_steps: set[str] = set()
        self._finalized = False
        self._cond = threading.Condition()

    @classmethod
    def finished(cls, results: ExecutionResults) -> SharedExecution:
        execution = cls(results, set(results.models))
        execution.results = results
        execution._finalized = True  # the process that ran it records what it owes
        return execution

    def covers(self, model: str) -> bool:
        return model in self.models or (self.results is not None and model in self.results.models)

    # called from the SQLMesh thread
    def model_ready(self, outcome: ModelOutcome) -> None:
        with self._cond:
            self._early[outcome.model] = outcome
            self._progress.append(f"{outcome.model} ({outcome.duration_ms} ms)")
            self._cond.notify_all()

    def log(self, message: str) -> None:
        with self._cond:
            self._messages.append(message)

    def finish(self, results: ExecutionResults) -> None:
        with self._cond:
            self.results = results
            self._cond.notify_all()

    # called from asset steps
    def stop(self, reason: str) -> None:
        """Ask the SQLMesh child to stop (it ends at a safe point, then the results say so)."""
        if self.stop_child is not None and self.results is None:
            self.stop_child(reason)

    def _wait(self, ready: Callable[[], bool]) -> None:
        if not self._cond.wait_for(ready, timeout=self.wait_bound_seconds):
            raise ExecutionWaitTimeout(
                f"SQLMesh execution {self.results_without_models.execution_id} gave no results "
                f"within {self.wait_bound_seconds:.0f} s, the bound of its execution; models "
                f"not reported: {', '.join(sorted(self.models - set(self._early)))}"
            )

    def wait_for(self, model: str) -> tuple[ModelOutcome | None, ExecutionResults]:
        with self._cond:
            self._wait(lambda: model in self._early or self.results is not None)
            if model in self._early and self.results is None:
                return self._early[model], self.results_without_models
            assert self.results is not None
            return self.results.outcome(model), self.results

    def wait_done(self) -> ExecutionResults:
        with self._cond:
            self._wait(lambda: self.results is not None)
            assert self.results is not None
            return self.results

    def wait_stopped(self, timeout: float) -> bool:
        """After `stop`: whether the SQLMesh thread ended (results written, run lock free)."""
        if self.thread is None:
            return True
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def drain_messages(self, force: bool = False) -> list[str]:
        """SQLMesh's messages and per-model progress, at most every few seconds unless forced:
        every log line is an event Dagster stores, so progress is batched, not one per model."""
        with self._cond:
            now = time.monotonic()
            if not force and now - self._last_drain < PROGRESS_INTERVAL_SECONDS:
                return []
            self._last_drain = now
            messages, self._messages = self._messages, []
            if self._progress:
                messages.append(
                    f"SQLMesh evaluated {len(self._progress)} model(s): "
                    + ", ".join(self._progress)
                )
                self._progress = []
            return messages

    def mark_reported(self, model: str) -> bool:
        """True when every model of this execution has now been reported in this process."""
        with self._cond:
            self._reported.add(model)
            return self.models <= self._reported

    def claim_skipped_step(self, model: str) -> bool:
        """Whether the caller records `model`, whose step Dagster skips (once per process)."""
        with self._cond:
            if model in self._recorded_for_skipped_steps:
                return False
            self._recorded_for_skipped_steps.add(model)
            self._reported.add(model)
            return True

    def unreported(self) -> set[str]:
        with self._cond:
            return self.models - self._reported

    def reported_early(self) -> set[str]:
        with self._cond:
            return set(self._early)

    def early_outcomes(self) -> dict[str, ModelOutcome]:
        with self._cond:
            return dict(self._early)

    def claim_finalization(self) -> bool:
        with self._cond:
            claimed, self._finalized = not self._finalized, True
            return claimed


_process_lock = threading.Lock()
_executions_by_run: dict[tuple[str, str], list[SharedExecution]] = {}


@contextmanager
def executions_of_run(run_id: str, project: str) -> Iterator[list[SharedExecution]]:
    """The executions this process knows for `run_id` of `project` (its folder), held under the
    process lock: a step that finds none covering its model starts one before another step of
    the project can look."""
    with _process_lock:
        yield _executions_by_run.setdefault((run_id, project), [])


def started_and_run_executions(run_id: str) -> tuple[list[SharedExecution], list[SharedExecution]]:
    """The executions with a SQLMesh thread of every run in this process, and those of `run_id`
    (of every project)."""
    with _process_lock:
        started = [e for runs in _executions_by_run.values() for e in runs if e.thread]
        own = [e for (run, _), runs in _executions_by_run.items() if run == run_id for e in runs]
        return started, own
