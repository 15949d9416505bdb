"""The SQLMesh side of a `SQLMeshProject`: its configs, its Contexts, and loading its spec.

Loading is child work: `SQLMeshProject` (below this package) starts a child interpreter for a spec
cache miss, and code running in the SQLMesh child, which holds SQLMesh already, loads in-process
through `load_spec` here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import chdir, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

from sqlmesh import Context
from sqlmesh.core.config import Config

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.common import versions
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.project import sqlmesh_project
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.selection import ModelSelection
from mxm_dagster.records.specs import LoadedModels


def configs(project: SQLMeshProject) -> dict[Path, Config]:
    """Each folder's config as SQLMesh reads it, SQLMesh's cache where the project keeps its
    caches (`SQLMeshProject.cache_root`)."""
    project.check_location()
    by_folder = {path: sqlmesh_api.load_project_config(path) for path in project.paths}
    cache_dir = project.sqlmesh_cache_dir
    if cache_dir is not None:  # SQLMesh takes it from the first folder's config
        by_folder = {p: sqlmesh_api.with_cache_dir(c, cache_dir) for p, c in by_folder.items()}
    known = sqlmesh_api.gateway_names(by_folder[project.path])
    if project.gateway and project.gateway not in known:
        raise ProjectLoadError(
            f"Unknown SQLMesh gateway {project.gateway!r} for project {project.path}; "
            f"the project defines: {', '.join(known) or 'no gateways'} (MXM_SQLMESH_GATEWAY)"
        )
    return by_folder


def config(project: SQLMeshProject) -> Config:
    """The first folder's config: SQLMesh takes the connections from it."""
    return configs(project)[project.path]


def _configured_connection(project: SQLMeshProject, first: Config) -> tuple[str, Path | None]:
    """The gateway's name and DuckDB file as the first folder's config `first` defines them."""
    gateway = project.gateway or sqlmesh_api.default_gateway(first)
    return gateway, sqlmesh_api.warehouse_path(first, project.gateway, project.path)


def in_project_folder(project: SQLMeshProject) -> bool:
    """Whether this process works in the project's (first) folder, as SQLMesh must."""
    try:
        return Path.cwd().resolve() == project.path.resolve()
    except OSError:  # the working directory is gone
        return False


def open_context(
    project: SQLMeshProject, recorder: OutcomeRecorder | None = None, load: bool = True
) -> Context:
    """A Context of `project`, in a process working in the project's folder.

    SQLMesh resolves every relative path (the DuckDB file, models' `read_csv`, Python models'
    `open`, `before_all` statements) against the working directory, and uses it for as long as
    the Context lives: the children start there (common/interpreter.py); anywhere else, use
    `opened_context`, which moves there for the Context's life.
    """
    versions.check_installed()  # this interpreter's SQLMesh, whatever the parent checked
    if not in_project_folder(project):
        raise ProjectLoadError(
            f"A SQLMesh Context of {project.path} must be opened in that folder, where the "
            f"`sqlmesh` CLI runs (this process works in {Path.cwd()}): use opened_context"
        )
    return sqlmesh_api.open_context(configs(project), project.gateway, recorder, load)


@contextmanager
def opened_context(
    project: SQLMeshProject, recorder: OutcomeRecorder | None = None, load: bool = True
) -> Iterator[Context]:
    """A Context of `project` for the block, the process working in the project's folder
    meanwhile (a test, a notebook; a no-op in the children), closed at the end."""
    project.check_location()  # a missing folder is a ProjectLoadError, not chdir's OSError
    with nullcontext() if in_project_folder(project) else chdir(project.path):
        context = open_context(project, recorder, load)
        try:
            yield context
        finally:
            sqlmesh_api.close_context(context)


def load_into(
    project: SQLMeshProject, cache_file: Path, selection: ModelSelection | None = None
) -> LoadedModels:
    """Load the project with SQLMesh in this process and write its spec to `cache_file`: the
    work behind a spec cache miss. With `selection`, also resolve it with SQLMesh's selector and
    write the selected names to its cache file (the same load serves both)."""
    with opened_context(project) as context:
        spec = sqlmesh_api.project_spec(context)
        if selection is not None:
            names = sqlmesh_api.select_model_names(context, selection.select, selection.exclude)
            selection.write(project.selection_file(selection), names)
        gateway, warehouse = _configured_connection(project, context.config)
    spec = replace(spec, gateway=gateway, warehouse=str(warehouse) if warehouse else None)
    spec.write(cache_file)
    return spec


# This process holds SQLMesh: a spec cache miss is loaded here, whoever asks (ADR 10).
sqlmesh_project.load_here_with(load_into)
