"""Starting a run's SQLMesh execution: the child process, watched by a thread of the step.

The thread owns the per-run lock until the results are in the run's results file, so steps of
other processes (multiprocess executor) read a finished file, never a half-written one.
"""

from __future__ import annotations

import threading
from pathlib import Path

from mxm_dagster.common.locks import FileLock
from mxm_dagster.project.protocol import STOP_GRACE_SECONDS, ChildOrder
from mxm_dagster.records.results import ExecutionResults, RunResults
from mxm_dagster.run.child import ChildControl, ExecutionFailed, run_in_child
from mxm_dagster.run.execution import SharedExecution


def start_execution(
    order: ChildOrder,
    stored: RunResults,
    results_file: Path,
    run_lock: FileLock,
    thread_name: str,
) -> SharedExecution:
    """Start SQLMesh in a child process for `order`, watched by a thread that owns `run_lock`
    until the results are on disk; a failure to run becomes results saying so."""
    request = order.request
    models = set(request.selected) | request.checks_only
    execution = SharedExecution(request.results_without_models(), models)
    control = ChildControl()
    execution.stop_child = control.stop
    # the thread ends within the order's bound (the child is killed by then), then writes a file
    execution.wait_bound_seconds = order.bound_seconds() + 2 * STOP_GRACE_SECONDS

    def work() -> None:
        error: str | None = None
        try:
            results = run_in_child(order, execution.log, execution.model_ready, control)
        except ExecutionFailed as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            early = execution.early_outcomes()  # final before it failed: they stay as they were
            unreported = models - set(early)
            if unreported:
                error += f"; models SQLMesh did not report: {', '.join(sorted(unreported))}"
            execution.log(f"SQLMesh execution failed: {error}")
            results = ExecutionResults.not_started(request.environment, unreported, error)
            results.models.update(early)
        try:
            stored.executions.append(results)
            stored.write(results_file)
        finally:
            run_lock.release()
            execution.finish(results)

    execution.thread = threading.Thread(target=work, name=thread_name, daemon=False)
    execution.thread.start()
    return execution
