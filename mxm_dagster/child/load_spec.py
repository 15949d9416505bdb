"""A spec cache miss, handled in a child interpreter: SQLMesh loads the project away from Dagster.

A Dagster process (code server, CLI, run worker) that finds no spec for the project's current
version runs `python -m mxm_dagster.child.load_spec LOCATION GATEWAY CACHE_DIR [SELECTION]`
(LOCATION: the project folders, separated by `os.pathsep`; GATEWAY and CACHE_DIR may be empty;
SELECTION: a `ModelSelection` as JSON, resolved with SQLMesh's selector on the same load) and
waits. The child loads the project with SQLMesh, writes the spec cache and prints one line:
`MXM_SPEC {"spec_file": ...}`, or `MXM_SPEC {"error": ...}` with the message a data engineer
should see (ADR 9).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from mxm_dagster.child.project import load_into
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.common.garbage import collection_paused
from mxm_dagster.project.sqlmesh_project import SPEC_REPLY_PREFIX, SQLMeshProject
from mxm_dagster.records.selection import ModelSelection


def _load(project: SQLMeshProject, selection: ModelSelection | None) -> dict[str, str]:
    try:
        cache_file = project.spec_file()
        load_into(project, cache_file, selection)
        return {"spec_file": str(cache_file)}
    except ProjectLoadError as exc:
        return {"error": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        return {
            "error": f"SQLMesh could not load the project at {project.path}: "
            f"{type(exc).__name__}: {exc}"
        }


def main(argv: list[str]) -> None:
    location, gateway, cache_dir, *rest = argv
    selection = ModelSelection.from_json(rest[0]) if rest else None
    project = SQLMeshProject.at(location, gateway=gateway or None, cache_dir=cache_dir or None)
    with collection_paused():  # the process ends right after: nothing to collect (ADR 23)
        reply = _load(project, selection)
    sys.stdout.write(SPEC_REPLY_PREFIX + json.dumps(reply) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and every connection closed: skip tearing down SQLMesh's objects,
    # which takes the better part of a second at 1000 models while the parent waits.
    os._exit(0 if "spec_file" in reply else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
