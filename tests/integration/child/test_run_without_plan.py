"""A deployed, unchanged project is run, not planned: the same intervals without fingerprinting
every model (ADR 6). Anything that could make a plan differ sends the run back to planning."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from mxm_dagster.child.project import opened_context
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import grow_numbers, materialize, query
from tests.support.sqlmesh_state import recorded_intervals, remove_latest_interval

GUARDED = '"warehouse"."staging"."guarded"'
AFTER_GUARDED = '"warehouse"."marts"."after_guarded"'


def add_guarded_models(project: Path) -> None:
    """A model with a blocking audit on data another system writes, and one model below it."""
    (project / "models" / "guarded.sql").write_text(
        "MODEL (name staging.guarded, kind FULL, audits (not_null(columns := (value))));\n"
        "SELECT reading_id, value FROM src.readings\n"
    )
    (project / "models" / "after_guarded.sql").write_text(
        "MODEL (name marts.after_guarded, kind FULL);\nSELECT count(*) AS n FROM staging.guarded\n"
    )


def forget_latest_interval(project: Path, model: str) -> None:
    with opened_context(SQLMeshProject(path=project)) as context:
        remove_latest_interval(context, "prod", model)


def intervals_of(project: Path, model: str) -> list[tuple[int, int]]:
    with opened_context(SQLMeshProject(path=project)) as context:
        return recorded_intervals(context, "prod")[model]


def test_unchanged_project_is_run_and_edits_are_planned(clean_project: Path) -> None:
    first = materialize(clean_project)
    assert first.success
    assert {m["sqlmesh/command"] for m in first.materializations().values()} == {"plan"}
    filled = intervals_of(clean_project, '"warehouse"."raw"."numbers"')

    forget_latest_interval(clean_project, '"warehouse"."raw"."numbers"')
    second = materialize(clean_project, selection=["raw/numbers"])
    assert second.success
    mats = second.materializations()
    assert set(mats) == {"raw/numbers"}
    assert mats["raw/numbers"]["sqlmesh/command"] == "run"
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    assert mats["raw/numbers"]["sqlmesh/data_changed"] is True
    assert mats["raw/numbers"]["sqlmesh/reported_before_promotion"] is False  # nothing to promote
    assert mats["raw/numbers"]["dagster/row_count"] == 10
    assert intervals_of(clean_project, '"warehouse"."raw"."numbers"') == filled
    assert second.checks() == {
        "raw/numbers:not_null": (True, "ERROR"),
        "raw/numbers:unique_values": (True, "ERROR"),
    }

    grow_numbers(clean_project)
    third = materialize(clean_project)
    assert third.success
    mats = third.materializations()
    assert mats["raw/numbers"]["sqlmesh/command"] == "plan"
    assert mats["raw/numbers"]["sqlmesh/outcome"] == "evaluated"
    assert query(clean_project / "warehouse.duckdb", "SELECT s FROM marts.healthy") == [(420,)]

    fourth = materialize(clean_project)  # the edit is deployed: back to running
    assert fourth.success
    assert {m["sqlmesh/command"] for m in fourth.materializations().values()} == {"run"}
    assert {m["sqlmesh/outcome"] for m in fourth.materializations().values()} == {"up_to_date"}
    assert {m["sqlmesh/data_changed"] for m in fourth.materializations().values()} == {False}


@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_blocking_audit_failure_is_reported_alike_by_run_and_plan(
    command: str, clean_project: Path
) -> None:
    """SQLMesh audits what it wrote: the model's table holds the failing rows, its step fails
    with the audit's check, and nothing downstream is evaluated on top of them."""
    add_guarded_models(clean_project)
    assert materialize(clean_project).success
    if command == "plan":  # forget that this code location deployed the project
        for marker in (clean_project / ".cache" / "mxm_dagster").glob("*-serving.json"):
            marker.unlink()
    database = clean_project / "warehouse.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("INSERT INTO src.readings VALUES (99, NULL)")
    forget_latest_interval(clean_project, GUARDED)
    forget_latest_interval(clean_project, AFTER_GUARDED)

    result = materialize(clean_project, selection=["staging/guarded", "marts/after_guarded"])
    assert not result.success
    statuses = result.step_statuses()
    assert statuses["staging__guarded"] == "STEP_FAILURE"
    assert statuses.get("marts__after_guarded") != "STEP_SUCCESS"
    failure = result.failure_message("staging__guarded")
    assert f"SQLMesh model {GUARDED} failed" in failure and "not_null" in failure
    assert result.checks()["staging/guarded:not_null"] == (False, "ERROR")
    assert result.materializations() == {}
    assert query(database, "SELECT count(*) FROM staging.guarded") == [(6,)]
    assert query(database, "SELECT n FROM marts.after_guarded") == [(5,)]
