"""The Dagster processes of a code location never import SQLMesh.

Run workers, step processes, CLI runs and code-server restarts find the spec the code server
wrote (ADR 8); a process that finds none has a child interpreter load the project (ADR 9);
SQLMesh itself runs in its own child process (ADR 6). So a Dagster process neither pays
SQLMesh's import (over a second here) nor holds its memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import REPO, query, views

# Loads the code location and materializes every asset in this fresh interpreter, then reports
# whether any SQLMesh module was imported by the Dagster side.
_RUN_IN_FRESH_PROCESS = """
import json, sys
import dagster as dg
from mxm_dagster.definitions import defs

loaded_sqlmesh_for_definitions = "sqlmesh" in sys.modules
job = defs.resolve_implicit_global_asset_job_def()
result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
print(json.dumps({
    "success": result.success,
    "materialized": len(result.get_asset_materialization_events()),
    "loaded_sqlmesh_for_definitions": loaded_sqlmesh_for_definitions,
    "sqlmesh_modules": sorted(m for m in sys.modules if m.split(".")[0] == "sqlmesh"),
}))
"""


@pytest.mark.parametrize("spec_cache", ["warm", "cold"])
def test_code_location_runs_without_importing_sqlmesh(clean_project: Path, spec_cache: str) -> None:
    project = SQLMeshProject(path=clean_project)
    if spec_cache == "warm":
        project.load_spec()  # what the code server does once
    assert project.spec_file().exists() is (spec_cache == "warm")

    proc = subprocess.run(
        [sys.executable, "-c", _RUN_IN_FRESH_PROCESS],
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MXM_"))},
            "MXM_SQLMESH_PROJECT": str(clean_project),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert project.spec_file().exists()  # a cold load wrote it, from the child interpreter
    spec = project.load_spec()
    assert spec.warehouse == str(clean_project / "warehouse.duckdb")

    models = [m for m in spec.models if m.is_model]
    assert report["success"], proc.stderr
    assert report["materialized"] == len(models)
    assert report["loaded_sqlmesh_for_definitions"] is False
    assert report["sqlmesh_modules"] == []
    # The work happened, in the SQLMesh child: every model is a view with rows behind it.
    database = clean_project / "warehouse.duckdb"
    assert len(views(database)) == len(models)
    assert query(database, "SELECT s FROM marts.healthy") == [(110,)]


def test_spec_cache_key_follows_the_gateway_and_the_config_environment(
    clean_project: Path, monkeypatch
) -> None:
    project = SQLMeshProject(path=clean_project)
    base = project.fingerprint()
    assert SQLMeshProject(path=clean_project, gateway="other").fingerprint() != base
    # SQLMesh reads SQLMESH__* variables as config overrides: they change what a load means.
    monkeypatch.setenv("SQLMESH__DEFAULT_GATEWAY", "local")
    assert project.fingerprint() != base
    monkeypatch.delenv("SQLMESH__DEFAULT_GATEWAY")
    # So do variables the config file names through env_var() (the state connection's host).
    monkeypatch.setenv("MXM_SQLMESH_STATE_HOST", "elsewhere")
    assert project.fingerprint() != base
