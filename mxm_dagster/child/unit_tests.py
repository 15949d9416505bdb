"""The run option that runs the project's SQLMesh unit tests before anything is planned.

A failing test stops the execution before SQLMesh plans or runs: the error names the failing
tests with SQLMesh's own diff, and every selected step fails with it. SQLMesh runs the tests on
its test connection, so neither the warehouse nor SQLMesh's state is touched either way.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.common.errors import UnitTestsFailedError


def check_unit_tests(context: Context, log: Callable[[str], None]) -> None:
    """Run the unit tests of the project loaded into `context`; raise if any fails."""
    report = sqlmesh_api.run_unit_tests(context)
    if not report.ran:
        log("SQLMesh unit tests: the project has none (its tests/ folder holds no test)")
        return
    if not report.failed:
        log(f"SQLMesh unit tests: {report.passed} tests passed in {report.seconds:.1f} s")
        return
    raise UnitTestsFailedError(
        f"SQLMesh unit tests: {len(report.failed)} of {report.ran} tests failed, so SQLMesh "
        f"planned and ran nothing (state and warehouse unchanged): {', '.join(report.failed)}"
        f"\n{report.details}"
    )
