"""How mxm_dagster starts the child interpreters that hold its SQLMesh side (ADR 6, ADR 9).

Every child that loads a SQLMesh Context runs in the project's (first) folder, as the `sqlmesh`
CLI does when a data engineer runs it there: SQLMesh, DuckDB and the project's own code resolve
relative paths (`read_csv('data/x.csv')`, a Python model's `open`, a `before_all` statement, a
`database:` file) against the working directory, and Dagster is started from anywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
#: Variables a child reads as paths: made absolute, since the child works in another folder
#: (DAGSTER_HOME: a read-only project's default cache folder, `SQLMeshProject.cache_root`).
_PATH_VARIABLES = ("MXM_SQLMESH_CACHE_DIR", "DAGSTER_HOME")


def child_command(module: str, *args: str) -> list[str]:
    """`python -m module args...` with this interpreter, so the child has the same packages."""
    return [sys.executable, "-m", module, *args]


def child_env() -> dict[str, str]:
    """This process's environment, with mxm_dagster importable however the parent found it, and
    the paths it names absolute: the child starts in the project folder, not here."""
    env = dict(os.environ)
    search = [_PACKAGE_PARENT, *(env.get("PYTHONPATH") or "").split(os.pathsep)]
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(entry) for entry in search if entry)
    for name in _PATH_VARIABLES:
        if env.get(name):
            env[name] = os.path.abspath(os.path.expanduser(env[name]))
    return env
