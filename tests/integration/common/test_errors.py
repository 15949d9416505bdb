"""Bad input gets a clear error that says what is wrong and where, and loses nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import REPO, materialize, run_cli, views, warehouse_objects

LOAD_CODE_LOCATION = ["python", "-c", "import mxm_dagster.definitions"]


def test_missing_project_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ProjectLoadError, match="does not exist"):
        SQLMeshProject(path=missing).load_spec()
    done = run_cli(LOAD_CODE_LOCATION, {"MXM_SQLMESH_PROJECT": str(missing)})
    assert done.returncode != 0
    assert f"SQLMesh project directory {missing} does not exist" in done.stderr
    assert "MXM_SQLMESH_PROJECT" in done.stderr
    # A process that already imported SQLMesh loads in process (ADR 9): the same error there.
    in_process = (
        "import sqlmesh, sys; from mxm_dagster.project.sqlmesh_project import SQLMeshProject; "
        "SQLMeshProject(path=sys.argv[1]).load_spec()"
    )
    done = run_cli(["python", "-c", in_process, str(missing)], {})
    assert done.returncode != 0
    assert f"ProjectLoadError: SQLMesh project directory {missing} does not exist" in done.stderr


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ProjectLoadError, match="no config.yaml"):
        SQLMeshProject(path=tmp_path).load_spec()


def test_unknown_gateway(clean_project: Path) -> None:
    done = run_cli(
        LOAD_CODE_LOCATION,
        {"MXM_SQLMESH_PROJECT": str(clean_project), "MXM_SQLMESH_GATEWAY": "snowflake_prod"},
    )
    assert done.returncode != 0
    assert "Unknown SQLMesh gateway 'snowflake_prod'" in done.stderr
    assert "the project defines: local" in done.stderr


def test_a_loader_that_dies_is_reported(tmp_path: Path) -> None:
    """The child that loads the project (ADR 9) ends without an answer: say so, and how."""
    (tmp_path / "config.py").write_text("import os\n\nos._exit(3)\n")
    done = run_cli(LOAD_CODE_LOCATION, {"MXM_SQLMESH_PROJECT": str(tmp_path)})
    assert done.returncode != 0
    assert f"SQLMesh could not load the project at {tmp_path}" in done.stderr
    assert "ended without an answer (exit code 3)" in done.stderr


def test_model_with_a_syntax_error_names_the_file(clean_project: Path) -> None:
    bad = clean_project / "models" / "bad.sql"
    bad.write_text("MODEL (name staging.bad, kind FULL);\nSELECT FROM WHERE (((\n")
    with pytest.raises(ProjectLoadError) as raised:
        SQLMeshProject(path=clean_project).load_spec()
    message = str(raised.value)
    assert str(bad) in message
    assert "Line 2" in message
    assert "\x1b[" not in message  # no terminal escape codes in the UI
    # A Dagster process loads through a child interpreter (ADR 9): the same message reaches it.
    done = run_cli(LOAD_CODE_LOCATION, {"MXM_SQLMESH_PROJECT": str(clean_project)})
    assert done.returncode != 0
    assert "ProjectLoadError" in done.stderr and str(bad) in done.stderr
    assert "Line 2" in done.stderr
    bad.unlink()  # fixing the file recovers without anything else to clean up
    assert SQLMeshProject(path=clean_project).load_spec().models


def test_locked_warehouse_fails_clearly_and_writes_nothing(clean_project: Path) -> None:
    database = clean_project / "warehouse.duckdb"
    before = warehouse_objects(database)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(120)",
            str(database),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        run = materialize(clean_project, resource_config={"warehouse_wait_seconds": 2})
        assert time.monotonic() - started < 60
    finally:
        holder.kill()
        holder.wait()
    assert not run.success
    statuses = run.step_statuses()
    assert statuses["raw__numbers"] == "STEP_FAILURE"
    assert statuses["staging__readings"] == "STEP_FAILURE"
    message = run.failure_message("raw__numbers")
    assert f"The DuckDB warehouse {database} is held open by another process" in message
    assert "nothing was written" in message
    assert sum("Running SQLMesh for" in m for m in run.messages()) == 1  # no retry per step
    assert warehouse_objects(database) == before
    assert materialize(clean_project).success
    assert ("marts", "healthy") in views(database)
