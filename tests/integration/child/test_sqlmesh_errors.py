"""What a run reports depends on SQLMesh's exception types and objects, not on its message
texts (ADR 16): each path, on real SQLMesh and DuckDB, as our console and
`sqlmesh_api.errors` read it. `make test-compat` runs this file on the oldest supported SQLMesh
and Dagster too, so a minor release that moves one of these objects fails here.

Paths: a model that fails to evaluate (a bare `PlanError` after `log_failed_models`), a blocking
audit (`NodeAuditsErrors` of `AuditError`s) and a non-blocking one (the notified `AuditError`,
not logged twice), a destructive change the plan builder refuses (the console's
`log_destructive_change`, then a bare `PlanError`) and one the migration stage refuses (a
`DestructiveChangeError` under a `NodeExecutionFailedError`), and the version check.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import duckdb
import pytest

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.project import opened_context
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.common import versions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import DUCKDB_CONFIG, REPO, query, views


def _project(tmp_path: Path, models: dict[str, str]) -> Path:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "config.yaml").write_text(DUCKDB_CONFIG)
    for name, text in models.items():
        (project / "models" / name).write_text(text)
    return project


class _Recorder(OutcomeRecorder):
    """Keeps the log lines the console sends, to tell what reached the log."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)
        super().message(text)


def _plan(project: Path, recorder: OutcomeRecorder, **options: object) -> BaseException | None:
    """Apply a plan of every model as a run does; the error SQLMesh raised, if any."""
    with opened_context(SQLMeshProject(path=project), recorder) as context:
        try:
            sqlmesh_api.apply_plan(context, "prod", None, **options)  # type: ignore[arg-type]
        except Exception as exc:
            return exc
    return None


NUMBERS = "MODEL (name raw.numbers, kind FULL);\nSELECT CAST(range AS INT) AS n FROM range(1, 6)\n"


def test_failed_models_and_audits_are_read_from_sqlmeshs_objects(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        {
            "numbers.sql": NUMBERS,
            "broken.sql": "MODEL (name raw.broken, kind FULL);\n"
            "SELECT CAST('abc' || n AS INT) AS x FROM raw.numbers\n",
            "blocked.sql": "MODEL (name raw.blocked, kind FULL,"
            " audits (not_null(columns := (y))));\nSELECT NULL::INT AS y FROM raw.numbers\n",
            "warned.sql": "MODEL (name raw.warned, kind FULL, audits"
            " (accepted_range(column := n, max_v := 2, blocking := false)));\n"
            "SELECT n FROM raw.numbers\n",
        },
    )
    recorder = _Recorder()

    error = _plan(project, recorder)

    assert error is not None and sqlmesh_api.is_plan_failure(error), repr(error)
    assert sqlmesh_api.destructive_refusal(error, recorder.destructive_changes) is None
    broken, blocked, warned = (f'"warehouse"."raw"."{m}"' for m in ("broken", "blocked", "warned"))
    assert recorder.failed_models() == {broken, blocked}
    assert "Conversion Error" in (recorder.records[broken].error or "")
    (blocking,) = recorder.records[blocked].audit_failures
    assert (blocking.name, blocking.failed_rows, blocking.blocking) == ("not_null", 5, True)
    (non_blocking,) = recorder.records[warned].audit_failures
    assert (non_blocking.name, non_blocking.failed_rows) == ("accepted_range", 3)
    assert non_blocking.blocking is False
    assert not [line for line in recorder.lines if "accepted_range" in line], recorder.lines
    # SQLMesh recorded the good models' intervals; nothing was promoted (the plan failed)
    assert views(project / "warehouse.duckdb") == set()


EVENTS = """MODEL (
  name raw.events,
  kind INCREMENTAL_BY_UNIQUE_KEY (unique_key n, forward_only true)
);
SELECT n, n * 10 AS ten_n, n * 100 AS hundred_n FROM raw.numbers
"""


def test_a_destructive_change_the_plan_builder_refuses(tmp_path: Path) -> None:
    project = _project(tmp_path, {"numbers.sql": NUMBERS, "events.sql": EVENTS})
    assert _plan(project, OutcomeRecorder()) is None
    (project / "models" / "events.sql").write_text(EVENTS.replace(", n * 100 AS hundred_n", ""))
    recorder = OutcomeRecorder()

    error = _plan(project, recorder)

    assert error is not None
    model = '"warehouse"."raw"."events"'
    assert sqlmesh_api.destructive_refusal(error, recorder.destructive_changes) == [model]
    assert "hundred_n" in recorder.destructive_changes.get(model, ""), recorder.destructive_changes
    assert not sqlmesh_api.migration_details(error)
    columns = [r[0] for r in query(project / "warehouse.duckdb", "DESCRIBE raw.events")]
    assert columns == ["n", "ten_n", "hundred_n"]  # nothing changed
    allowed = _plan(project, OutcomeRecorder(), allow_destructive_models=[model])
    assert allowed is None


def test_a_destructive_change_a_model_allows_with_warn_is_a_log_line(tmp_path: Path) -> None:
    """`log_destructive_change(error=False)`: SQLMesh applies the change; no refusal is kept."""
    warn = EVENTS.replace("forward_only true)", "forward_only true, on_destructive_change warn)")
    project = _project(tmp_path, {"numbers.sql": NUMBERS, "events.sql": warn})
    assert _plan(project, OutcomeRecorder()) is None
    (project / "models" / "events.sql").write_text(warn.replace(", n * 100 AS hundred_n", ""))
    recorder = _Recorder()

    assert _plan(project, recorder) is None

    assert not recorder.destructive_changes
    assert [line for line in recorder.lines if "hundred_n" in line], recorder.lines


def test_a_destructive_change_the_migration_stage_refuses(tmp_path: Path) -> None:
    """Columns read from an undeclared table have unknown types: the builder cannot compare
    the schemas, SQLMesh finds the dropped column only when it migrates the table."""
    project = _project(tmp_path, {"events.sql": EVENTS.replace("raw.numbers", "src.numbers")})
    with duckdb.connect(str(project / "warehouse.duckdb")) as connection:
        connection.execute("CREATE SCHEMA src")
        connection.execute("CREATE TABLE src.numbers AS SELECT range AS n FROM range(1, 6)")
    assert _plan(project, OutcomeRecorder()) is None
    (project / "models" / "events.sql").write_text(
        EVENTS.replace("raw.numbers", "src.numbers").replace(", n * 100 AS hundred_n", "")
    )
    recorder = OutcomeRecorder()

    error = _plan(project, recorder)

    assert error is not None
    assert not recorder.destructive_changes  # the builder could not tell
    model = '"warehouse"."raw"."events"'
    assert sqlmesh_api.destructive_refusal(error, recorder.destructive_changes) == [model]
    (details,) = sqlmesh_api.migration_details(error)
    assert "hundred_n" in details
    assert not sqlmesh_api.is_plan_failure(error) or not recorder.failed_models()


@pytest.mark.parametrize(
    ("package", "installed", "supported"),
    [
        ("sqlmesh", "0.232.0", False),
        ("sqlmesh", "0.233.0", True),
        ("sqlmesh", "0.236.4", True),
        ("sqlmesh", "0.237.0", False),
        ("dagster", "1.11.16", False),
        ("dagster", "1.12.0", True),
        ("dagster", "1.13.27", True),
        ("dagster", "1.14.0rc1", False),
    ],
)
def test_a_version_outside_the_range_stops_the_load_naming_it(
    package: str, installed: str, supported: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our check only: the installed version is what the distribution's metadata says."""
    real = metadata.version
    monkeypatch.setattr(
        versions.metadata, "version", lambda name: installed if name == package else real(name)
    )
    supported_range = versions.SQLMESH if package == "sqlmesh" else versions.DAGSTER
    if supported:
        assert versions.check(supported_range) == installed
        return
    with pytest.raises(versions.UnsupportedVersionError) as raised:
        versions.check(supported_range)
    assert installed in str(raised.value)
    assert str(supported_range) in str(raised.value)


def test_the_installed_versions_are_in_the_range() -> None:
    """The environment the suite runs in (pinned or oldest) is one the range allows, and the
    range is the one pyproject.toml declares."""
    versions.check_installed()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"{versions.SQLMESH}"' in pyproject
    assert f'"{versions.DAGSTER}"' in pyproject


def test_an_unsupported_sqlmesh_stops_the_code_location_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any spec, cached or not: `SQLMeshProject.load_spec` is every load path's door."""
    project = _project(tmp_path, {"numbers.sql": NUMBERS})
    real = metadata.version
    monkeypatch.setattr(
        versions.metadata, "version", lambda name: "0.240.0" if name == "sqlmesh" else real(name)
    )
    versions.check_installed.cache_clear()
    with pytest.raises(versions.UnsupportedVersionError, match=r"sqlmesh>=0\.233,<0\.237"):
        SQLMeshProject(path=project).load_spec()
    versions.check_installed.cache_clear()
