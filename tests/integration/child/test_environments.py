"""SQLMesh virtual environments and change safety, through real Dagster runs."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import materialize, query, views, warehouse_objects

EVENTS_MODEL = """MODEL (
  name staging.events,
  kind INCREMENTAL_BY_UNIQUE_KEY (unique_key n, forward_only true)
);
SELECT n, n * 10 AS ten_n, n * 100 AS hundred_n FROM raw.numbers
"""


def physical_tables(database: Path) -> set[tuple[str, str]]:
    return {k for k, v in warehouse_objects(database).items() if v == "BASE TABLE"}


def test_dev_environment_backfills_only_the_change_and_leaves_prod(
    clean_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = clean_project / "warehouse.duckdb"
    assert materialize(clean_project).success
    prod_views = views(database)
    tables_before = physical_tables(database)

    model = clean_project / "models" / "healthy.sql"
    model.write_text(model.read_text().replace("sum(d) AS s", "sum(d) + 1 AS s"))
    monkeypatch.setenv("MXM_SQLMESH_ENVIRONMENT", "dev")
    result = materialize(clean_project)
    assert result.success, result.messages()

    mats = result.materializations()
    assert {m["sqlmesh/environment"] for m in mats.values()} == {"dev"}
    outcomes = {key: m["sqlmesh/outcome"] for key, m in mats.items()}
    assert outcomes == {
        "marts/healthy": "evaluated",
        "raw/numbers": "up_to_date",
        "staging/doubled": "up_to_date",
        "staging/readings": "up_to_date",
        "reporting/kpi_summary": "up_to_date",
    }
    # one new physical table (the edited model's new version); the rest is reused
    new_tables = physical_tables(database) - tables_before
    assert [name.split("__")[1] for _, name in new_tables] == ["healthy"]
    assert mats["marts/healthy"]["sqlmesh/view"].startswith("warehouse.marts__dev.")
    assert query(database, "SELECT s FROM marts__dev.healthy") == [(111,)]
    # prod: same views, old data
    assert {v for v in views(database) if "__dev" not in v[0]} == prod_views
    assert query(database, "SELECT s FROM marts.healthy") == [(110,)]


def test_destructive_change_to_prod_is_refused_unless_allowed(clean_project: Path) -> None:
    database = clean_project / "warehouse.duckdb"
    model = clean_project / "models" / "events.sql"
    model.write_text(EVENTS_MODEL)
    assert materialize(clean_project).success

    model.write_text(EVENTS_MODEL.replace(", n * 100 AS hundred_n", ""))
    refused = materialize(clean_project, selection=["staging/events"])
    assert not refused.success
    message = refused.failure_message("staging__events")
    assert "refused a destructive change" in message
    assert '"warehouse"."staging"."events"' in message
    assert "hundred_n" in message, message
    assert "allow_destructive" in message
    columns = [r[0] for r in query(database, "DESCRIBE staging.events")]
    assert columns == ["n", "ten_n", "hundred_n"]  # prod untouched

    allowed = materialize(
        clean_project,
        selection=["staging/events"],
        resource_config={"allow_destructive": ["staging.events"]},
    )
    assert allowed.success, allowed.messages()
    columns = [r[0] for r in query(database, "DESCRIBE staging.events")]
    assert columns == ["n", "ten_n"]


def test_a_destructive_change_sqlmesh_finds_only_when_migrating_is_refused_naming_the_model(
    clean_project: Path,
) -> None:
    """Columns of a table no model declares have unknown types: SQLMesh's plan builder cannot
    compare the schemas, and its migration stage refuses the change (`DestructiveChangeError`).
    The run names the model from SQLMesh's error object, and the column from SQLMesh's details."""
    database = clean_project / "warehouse.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE TABLE src.plain AS SELECT range AS n FROM range(1, 6)")
    source = EVENTS_MODEL.replace("raw.numbers", "src.plain")
    model = clean_project / "models" / "events.sql"
    model.write_text(source)
    assert materialize(clean_project, selection=["staging/events"]).success

    model.write_text(source.replace(", n * 100 AS hundred_n", ""))
    refused = materialize(clean_project, selection=["staging/events"])

    assert not refused.success
    message = refused.failure_message("staging__events")
    assert 'refused a destructive change to "warehouse"."staging"."events"' in message, message
    assert "hundred_n" in message, message
    columns = [r[0] for r in query(database, "DESCRIBE staging.events")]
    assert columns == ["n", "ten_n", "hundred_n"]  # prod untouched
