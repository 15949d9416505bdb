"""The SQLMesh side of a `SQLMeshProject`: its configs, its Contexts, and loading its spec."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlmesh import Context
from sqlmesh.core.config import Config

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.common.project import ModelSelection, SQLMeshProject
from mxm_dagster.records.specs import ProjectSpec


def configs(project: SQLMeshProject) -> dict[Path, Config]:
    """Each folder's config, its DuckDB paths anchored at that folder, SQLMesh's cache where the
    project keeps its caches (`SQLMeshProject.cache_root`)."""
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
    return gateway, sqlmesh_api.warehouse_path(first, project.gateway)


def open_context(
    project: SQLMeshProject, recorder: OutcomeRecorder | None = None, load: bool = True
) -> Context:
    return sqlmesh_api.open_context(configs(project), project.gateway, recorder, load)


def load_into(
    project: SQLMeshProject, cache_file: Path, selection: ModelSelection | None = None
) -> ProjectSpec:
    """Load the project with SQLMesh in this process and write its spec to `cache_file`: the
    work behind a spec cache miss. With `selection`, also resolve it with SQLMesh's selector and
    write the selected names to its cache file (the same load serves both)."""
    by_folder = configs(project)
    context = sqlmesh_api.open_context(by_folder, project.gateway, None, True)
    try:
        spec = sqlmesh_api.project_spec(context)
        if selection is not None:
            names = sqlmesh_api.select_model_names(context, selection.select, selection.exclude)
            selection.write(project.selection_file(selection), names)
    finally:
        sqlmesh_api.close_context(context)
    gateway, warehouse = _configured_connection(project, by_folder[project.path])
    spec = replace(spec, gateway=gateway, warehouse=str(warehouse) if warehouse else None)
    spec.write(cache_file)
    return spec
