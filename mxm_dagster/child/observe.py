"""What the environment serves, read from SQLMesh's state in a child interpreter for the observing
sensor (ADR 15): `python -m mxm_dagster.child.observe LOCATION GATEWAY CACHE_DIR ENVIRONMENT`
prints one line `MXM_SERVED {...}` (`records.served.ServedState`).

A sensor tick must stay cheap and must never get in a run's way: no model file is loaded (state
and connections only, as `sqlmesh run` starts), and while a run holds the project lock the child
reads nothing and says so; the sensor looks again at its next tick.
"""

from __future__ import annotations

import os
import sys
import traceback

from mxm_dagster.child.project import open_context
from mxm_dagster.child.sqlmesh_api import close_context, served_models
from mxm_dagster.common.errors import WarehouseBusyError
from mxm_dagster.common.locks import FileLock
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.served import SERVED_REPLY_PREFIX, ServedState


def read_served(project: SQLMeshProject) -> ServedState:
    state = ServedState(environment=project.environment)
    project.load_spec()  # the lock's name needs the connection; a miss is loaded here
    lock = FileLock(project.lock_path, "SQLMesh project lock")
    try:
        lock.acquire(0)
    except WarehouseBusyError:
        state.busy = "a run holds the SQLMesh project lock"
        return state
    try:
        context = open_context(project, load=False)
        try:
            state.models = served_models(context, project.environment)
        finally:
            close_context(context)
    except Exception as exc:
        traceback.print_exc()
        state.error = f"{type(exc).__name__}: {exc}"
    finally:
        lock.release()
    return state


def main(argv: list[str]) -> None:
    location, gateway, cache_dir, environment = argv
    project = SQLMeshProject.at(
        location, gateway=gateway or None, environment=environment, cache_dir=cache_dir or None
    )
    state = read_served(project)
    sys.stdout.write(SERVED_REPLY_PREFIX + state.to_json() + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # every connection is closed: skip tearing SQLMesh's objects down


if __name__ == "__main__":
    main(sys.argv[1:])
