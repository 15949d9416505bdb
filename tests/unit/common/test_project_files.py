"""The spec cache key walks a project folder as SQLMesh's loader does: what SQLMesh reads changes
the key, what it does not read (data, caches, odd files) neither changes it nor stops a load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.project.files import project_contents, project_files
from mxm_dagster.project.sqlmesh_project import SQLMeshProject

CONFIG = "model_defaults:\n  dialect: duckdb\n"


def _project(root: Path, config: str = CONFIG) -> Path:
    folder = root / "project"
    for sub in ("models", "macros", "audits", "seeds", "tests", "data", "helpers"):
        (folder / sub).mkdir(parents=True)
    (folder / "config.yaml").write_text(config)
    (folder / "models" / "a.sql").write_text("MODEL (name s.a, kind FULL); SELECT 1 AS x")
    (folder / "models" / "b.py").write_text("# a Python model\n")
    (folder / "models" / "c.sql").write_text("MODEL (name s.c, kind SEED (path '../lookup.csv'))")
    (folder / "lookup.csv").write_text("k,v\n1,2\n")
    (folder / "macros" / "m.py").write_text("# a macro\n")
    (folder / "audits" / "positive.sql").write_text("AUDIT (name positive); SELECT 1 WHERE 0")
    (folder / "seeds" / "codes.csv").write_text("code\nA\n")
    (folder / "tests" / "test_a.yaml").write_text("test_a: {}\n")
    (folder / "external_models.yaml").write_text("[]\n")
    (folder / "helpers" / "shared.py").write_text("RATE = 1\n")
    (folder / "data" / "x.csv").write_text("id\n1\n")
    (folder / "README.md").write_text("notes\n")
    return folder


@pytest.mark.parametrize(
    "edited",
    [
        "config.yaml",
        "models/a.sql",
        "models/b.py",
        "macros/m.py",
        "audits/positive.sql",
        "seeds/codes.csv",
        "lookup.csv",  # named by a SEED model outside seeds/
        "tests/test_a.yaml",
        "external_models.yaml",
        "helpers/shared.py",  # importable by models and macros
    ],
)
def test_a_file_sqlmesh_reads_changes_the_key(tmp_path: Path, edited: str) -> None:
    project = SQLMeshProject(path=_project(tmp_path))
    before = project.fingerprint()
    with (project.path / edited).open("a") as file:
        file.write("\n-- edited\n")
    assert project.fingerprint() != before


@pytest.mark.parametrize(
    "edited", ["data/x.csv", "README.md", ".venv/lib/site.py", ".cache/x.json", "logs/run.log"]
)
def test_data_caches_and_environments_leave_the_key_alone(tmp_path: Path, edited: str) -> None:
    project = SQLMeshProject(path=_project(tmp_path))
    before = project.fingerprint()
    (project.path / edited).parent.mkdir(parents=True, exist_ok=True)
    (project.path / edited).write_text("changed\n")
    assert project.fingerprint() == before


def test_odd_entries_sqlmesh_does_not_read_are_skipped(tmp_path: Path) -> None:
    folder = _project(tmp_path, CONFIG + 'ignore_patterns:\n  - ".#*"\n')
    (folder / "packages" / "customers").mkdir(parents=True)
    (folder / "packages" / "customers" / "customers").symlink_to("../packages/customers")
    (folder / "models" / ".#a.sql").symlink_to("user@host.1234:1700000000")
    (folder / "helpers" / ".#shared.py").symlink_to("user@host.1234:1700000000")
    (folder / "helpers" / "gone.py").symlink_to("nowhere.py")
    os.mkfifo(folder / "models" / "queue.sql")
    os.mkfifo(folder / "helpers" / "pipe.py")
    (folder / "helpers" / "odd.py").mkdir()
    venv = folder / "env"  # a virtual environment under any name
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to("/nonexistent/python3")
    (venv / "bin" / "tool.py").write_text("")

    listed = {name for name, _ in project_contents(folder)}

    assert listed == {
        "config.yaml",
        "external_models.yaml",
        "lookup.csv",
        "models/a.sql",
        "models/b.py",
        "models/c.sql",
        "macros/m.py",
        "audits/positive.sql",
        "seeds/codes.csv",
        "tests/test_a.yaml",
        "helpers/shared.py",
    }


def test_a_file_sqlmesh_would_read_but_cannot_is_named(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    lock = folder / "models" / ".#a.sql"
    lock.symlink_to("user@host.1234:1700000000")
    with pytest.raises(ProjectLoadError, match=f"SQLMesh reads {lock} .*ignore_patterns"):
        SQLMeshProject(path=folder).fingerprint()


def test_a_folder_named_like_a_model_is_named(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    (folder / "models" / "d.sql").mkdir()
    with pytest.raises(ProjectLoadError, match="d.sql \\(it is a folder\\)"):
        project_files(folder)


def test_without_readable_ignore_patterns_sqlmesh_reports_what_it_cannot_read(
    tmp_path: Path,
) -> None:
    """A config.py's ignore_patterns are known to SQLMesh only: nothing is required here, and
    SQLMesh's own load names a file it cannot read."""
    folder = _project(tmp_path)
    (folder / "config.yaml").unlink()
    (folder / "config.py").write_text("config = None\n")
    (folder / "models" / ".#a.sql").symlink_to("user@host.1234:1700000000")
    assert folder / "models" / ".#a.sql" not in project_files(folder)
