"""Running the project's SQLMesh unit tests (`tests/*.yaml`) as `sqlmesh test` does."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console as RichConsole
from sqlmesh import Context
from sqlmesh.core.console import TerminalConsole
from sqlmesh.core.test.result import ModelTextTestResult

_WIDTH = 160  # wide enough for SQLMesh's diff tables of a few columns, narrow enough for a log


@dataclass
class UnitTestReport:
    """What SQLMesh's test runner found: how many ran, which failed, and SQLMesh's own account."""

    ran: int
    failed: list[str] = field(default_factory=list)  # "path::test_name" of failures and errors
    details: str = ""  # SQLMesh's failure output (diff tables, errors), plain text
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return self.ran - len(self.failed)


def run_unit_tests(context: Context) -> UnitTestReport:
    """Run every unit test of the loaded project. SQLMesh runs them on its test connection (an
    in-memory DuckDB unless the gateway names a `test_connection`), never the warehouse or its
    state; the Context must have loaded the project, which is where the tests are read."""
    began = time.monotonic()
    result = context.test(stream=io.StringIO())  # unittest's own dots and summary: dropped
    seconds = time.monotonic() - began
    failed = [
        f"{_relative(test.path, context)}::{test.test_name}"
        for test in result.get_fail_and_error_tests()
    ]
    details = "" if result.wasSuccessful() else _as_sqlmesh_prints(result)
    return UnitTestReport(result.testsRun, failed, details, seconds)


def _relative(path: Path, context: Context) -> str:
    """A test file's path as `sqlmesh test` names it: relative to its project folder."""
    for folder in context.configs:
        if path.is_relative_to(folder):
            return str(path.relative_to(folder))
    return str(path)


def _as_sqlmesh_prints(result: ModelTextTestResult) -> str:
    """The failure details `sqlmesh test` prints (expected/actual diff tables, errors), rendered
    without colours. `TerminalConsole._log_test_details` is SQLMesh's one renderer of them."""
    buffer = io.StringIO()
    rich = RichConsole(file=buffer, width=_WIDTH, no_color=True, force_terminal=False)
    TerminalConsole(console=rich)._log_test_details(result)
    return buffer.getvalue().strip()
