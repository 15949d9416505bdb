"""Starting the SQLMesh child for a `ChildOrder` and reading its pipe, in the run worker (ADR 6)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

from mxm_dagster.common.interpreter import child_command, child_env
from mxm_dagster.records.protocol import ChildOrder, MessageKind
from mxm_dagster.records.results import ExecutionResults, ModelOutcome

CHILD_MODULE = "mxm_dagster.child.execute"


class ExecutionFailed(Exception):
    """The child reported an error before it had results; str() is its `Type: message`."""


def run_in_child(
    order: ChildOrder,
    on_log: Callable[[str], None],
    on_model_ready: Callable[[ModelOutcome], None],
) -> ExecutionResults:
    """Run `order` in a child interpreter; call back as its messages arrive."""
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
        child.stdin.write(order.to_json().encode() + b"\n")
        child.stdin.close()
    except BrokenPipeError:
        pass  # the child died before reading its order; its exit code says so below
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
                if kind == MessageKind.LOG:
                    on_log(message["message"])
                elif kind == MessageKind.READY:
                    on_model_ready(ModelOutcome.from_dict(message["outcome"]))
                elif kind == MessageKind.DONE:
                    results = ExecutionResults.from_dict(message["results"])
                elif kind == MessageKind.ERROR:
                    error = message["error"]
    finally:
        code = child.wait()
    if results is not None:
        return results
    if error is None and code < 0:
        error = f"the SQLMesh process was killed by signal {-code}"
    raise ExecutionFailed(error or f"the SQLMesh process ended with exit code {code}")
