"""The run option `run_unit_tests` (tag `mxm/unit_tests`) runs the project's SQLMesh unit tests
before anything is planned; a failing test fails the run and leaves SQLMesh's state and the
warehouse as they were.

Real SQLMesh on real DuckDB through real Dagster runs, on a copy of the fixture project with one
SQLMesh unit test of `marts.healthy` (twice the sum of 1..10, so 110) written into its `tests/`.
"""

from __future__ import annotations

from pathlib import Path

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.project import opened_context
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.run.resource import UNIT_TESTS_TAG
from tests.conftest import grow_numbers, materialize, query, warehouse_objects
from tests.support.sqlmesh_state import recorded_intervals

TEST_NAME = "test_healthy_sums_doubled"


def _write_unit_test(project: Path, expected_sum: int) -> None:
    """A SQLMesh unit test of marts.healthy: doubled values 2 and 4 sum to 6."""
    (project / "tests").mkdir()
    (project / "tests" / "test_healthy.yaml").write_text(
        f"{TEST_NAME}:\n"
        "  model: marts.healthy\n"
        "  inputs:\n"
        "    staging.doubled:\n"
        "      rows:\n"
        "        - {d: 2}\n"
        "        - {d: 4}\n"
        "  outputs:\n"
        "    query:\n"
        "      rows:\n"
        f"        - {{s: {expected_sum}}}\n"
    )


def _sqlmesh_state(project: Path) -> tuple[str | None, dict[str, list[tuple[int, int]]]]:
    """The prod environment's plan and the intervals SQLMesh recorded, as SQLMesh reads them."""
    with opened_context(SQLMeshProject(path=project), load=False) as context:
        return sqlmesh_api.finalized_plan_id(context, "prod"), recorded_intervals(context, "prod")


def _healthy(project: Path) -> int:
    return query(project / "warehouse.duckdb", "SELECT s FROM marts.healthy")[0][0]


def test_passing_unit_tests_let_the_run_plan_and_run(clean_project: Path) -> None:
    _write_unit_test(clean_project, expected_sum=6)

    first = materialize(clean_project, tags={UNIT_TESTS_TAG: "true"})  # plans a new warehouse
    # the project is unchanged: ADR 7's run path, which loads the project only for the tests
    second = materialize(clean_project, resource_config={"run_unit_tests": True})

    for result, command in ((first, "plan"), (second, "run")):
        assert result.success, result.messages()
        assert "SQLMesh unit tests: 1 tests passed" in "\n".join(result.messages())
        assert result.materializations()["marts/healthy"]["sqlmesh/command"] == command
    assert _healthy(clean_project) == 110


def test_a_failing_unit_test_fails_every_step_and_changes_nothing(clean_project: Path) -> None:
    _write_unit_test(clean_project, expected_sum=7)  # wrong: 2 + 4 is 6
    # option off (the default): the failing test is not run and the run succeeds
    off = materialize(clean_project)
    assert off.success, off.messages()
    assert not any("SQLMesh unit tests" in m for m in off.messages())

    grow_numbers(clean_project)  # an edit a plan would apply: marts.healthy would become 420
    state_before = _sqlmesh_state(clean_project)
    objects_before = warehouse_objects(clean_project / "warehouse.duckdb")

    failed = materialize(clean_project, resource_config={"run_unit_tests": True})

    assert not failed.success
    # the steps that ran failed (Dagster does not execute the steps downstream of a failure)
    statuses = failed.step_statuses()
    failed_steps = {step for step, status in statuses.items() if status == "STEP_FAILURE"}
    assert failed_steps == {"raw__numbers", "staging__readings"}, statuses
    assert set(statuses.values()) == {"STEP_FAILURE", "NOT_EXECUTED"}, statuses
    assert not failed.materializations()
    for step in failed_steps:
        message = failed.failure_message(step)
        assert f"tests/test_healthy.yaml::{TEST_NAME}" in message, message
        assert "1 of 1 tests failed" in message
        assert "Data mismatch" in message  # SQLMesh's diff of expected and actual rows
    assert _sqlmesh_state(clean_project) == state_before
    assert warehouse_objects(clean_project / "warehouse.duckdb") == objects_before
    assert _healthy(clean_project) == 110

    # without the option the same edit is planned: the failed run held it back
    after = materialize(clean_project)
    assert after.success, after.messages()
    assert _healthy(clean_project) == 420
