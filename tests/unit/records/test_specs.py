"""Model descriptions: their JSON form and the graph questions asked of them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mxm_dagster.records.specs import (
    AuditSpec,
    ColumnDep,
    ColumnLineageSpec,
    ColumnSpec,
    LoadedModels,
    ModelSpec,
)


def spec(name: str, depends_on: tuple[str, ...] = (), audits: tuple[AuditSpec, ...] = ()):
    return ModelSpec(
        name=name,
        catalog="db",
        schema="s",
        table=name,
        kind="FULL",
        depends_on=depends_on,
        audits=audits,
        columns=(ColumnSpec("id", "INT", "the key"), ColumnSpec("v", "TEXT")),
        tags=("t1", "t2"),
        grain=("id",),
        cron="@daily",
    )


PROJECT = LoadedModels(
    default_catalog="db",
    dialect="duckdb",
    engine="duckdb",
    models=(
        spec("raw"),
        spec("clean", ("raw",), (AuditSpec("not_null", "not_null_id", True, {"columns": "id"}),)),
        spec(
            "mart",
            ("clean",),
            (
                AuditSpec(
                    "assert_mart_fresh",
                    "assert_mart_fresh",
                    False,
                    standalone=True,
                    reads=("clean", "raw"),
                ),
                AuditSpec("unique_values", "unique_values", True, skip=True),
            ),
        ),
        spec("side", ("raw",)),
        replace(
            spec("report", ("mart", "side")),
            file_path="/p/models/report.sql",
            file_line=3,
            column_lineage=(
                ColumnLineageSpec("id", (ColumnDep("mart", "id"), ColumnDep("side", "id"))),
            ),
        ),
    ),
    gateway="local",
    warehouse="/tmp/w.duckdb",
    valid_until=1_800_000_000_000,
)


def test_a_project_spec_survives_its_json_form() -> None:
    restored = LoadedModels.from_json(PROJECT.to_json())
    assert restored == PROJECT
    assert restored.models[2].audits[0].reads == ("clean", "raw")
    assert isinstance(restored.models[0].columns[0], ColumnSpec)
    assert restored.models[4].column_lineage[0].deps[1] == ColumnDep("side", "id")


def test_a_models_end_and_cron_tz_survive_the_json_form() -> None:
    ended = ModelSpec(
        name="m",
        catalog=None,
        schema="s",
        table="m",
        kind="INCREMENTAL_BY_TIME_RANGE",
        end="2024-01-01",
        end_ms=1_704_153_600_000,
        cron_tz="America/Los_Angeles",
    )
    project = LoadedModels(default_catalog=None, dialect="duckdb", engine="duckdb", models=(ended,))
    assert LoadedModels.from_json(project.to_json()).models == (ended,)


def test_a_spec_with_relative_times_holds_only_until_they_move() -> None:
    assert PROJECT.holds_at(1_799_999_999_999)
    assert not PROJECT.holds_at(1_800_000_000_000)
    timeless = LoadedModels(default_catalog=None, dialect="duckdb", engine="duckdb", models=())
    assert timeless.holds_at(10**15)


def test_a_written_project_spec_is_read_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "spec.json"
    PROJECT.write(path)
    assert LoadedModels.from_json(path.read_text()) == PROJECT
    assert [p.name for p in path.parent.iterdir()] == ["spec.json"]


def test_downstream_holds_every_model_reading_a_model_directly_or_not() -> None:
    assert PROJECT.downstream("raw") == {"clean", "mart", "side", "report"}
    assert PROJECT.downstream("clean") == {"mart", "report"}
    assert PROJECT.downstream("report") == set()
    assert PROJECT.downstream("unknown") == set()


def test_standalone_audits_map_to_the_model_whose_check_reports_them() -> None:
    assert PROJECT.standalone_audits() == {"assert_mart_fresh": "mart"}


def test_by_name_finds_each_model() -> None:
    assert PROJECT.by_name()["side"].depends_on == ("raw",)
    assert set(PROJECT.by_name()) == {"raw", "clean", "mart", "side", "report"}
