"""Building the code location: every SQLMesh model as an asset, one shared SQLMesh execution
per run. `mxm_dagster.definitions` builds the default one."""

from __future__ import annotations

import os

import dagster as dg

from mxm_dagster.asset_graph.partitions import partitions_from_env
from mxm_dagster.assets.builder import assemble
from mxm_dagster.assets.conditions import automation_from_env
from mxm_dagster.assets.freshness import freshness_from_env
from mxm_dagster.assets.observe import observe_from_env
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.justetf.landing import landing_assets
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.run.resource import SQLMeshResultsResource

EXECUTOR_ENV = "MXM_DAGSTER_EXECUTOR"


def executor_from_env() -> dg.ExecutorDefinition:
    """In-process by default: one process per step costs seconds each (see docs/adr)."""
    choice = os.environ.get(EXECUTOR_ENV, "in_process")
    if choice == "multiprocess":
        return dg.multiprocess_executor
    if choice == "in_process":
        return dg.in_process_executor
    raise ValueError(f"{EXECUTOR_ENV} must be 'in_process' or 'multiprocess', not {choice!r}")


def build_definitions(
    project: SQLMeshProject | None = None, *, partitions: bool | None = None
) -> dg.Definitions:
    """The code location of `project` (default: from the MXM_ variables).

    `partitions`: time partitions for INCREMENTAL_BY_TIME_RANGE models; None reads
    MXM_SQLMESH_PARTITIONS (`on`/`off`, default off, ADR 5). MXM_SQLMESH_OBSERVE=on starts
    the sensor reporting SQLMesh runs made outside Dagster (ADR 15); MXM_SQLMESH_AUTOMATION
    (`sensor`, `cron`, `cron_or_eager`) picks the cron sensor or declarative automation, and
    MXM_SQLMESH_FRESHNESS=on gives the models freshness policies from their crons (ADR 17).
    """
    project = project or SQLMeshProject.from_env()
    spec = project.load_spec()
    time_partitions = partitions_from_env() if partitions is None else partitions
    translator = SQLMeshTranslator(
        spec, time_partitions=time_partitions, freshness=freshness_from_env()
    )
    landing = landing_assets(project, spec, translator)
    provided = [key for asset in landing for key in asset.keys]
    # The resource names no project: gateway and environment follow the MXM_ variables at run
    # time, as this code location is configured (`sqlmesh_definitions` pins them instead). The
    # project's cache folder goes to the run's steps: the landing asset and the SQLMesh child
    # then take the same lock.
    resource = SQLMeshResultsResource(cache_dir=_cache_dir(project))
    sqlmesh = assemble(
        project,
        spec,
        translator,
        None,
        resource,
        provided,
        observe=observe_from_env(),
        automation=automation_from_env(),
    )
    return dg.Definitions.merge(
        dg.Definitions(assets=landing, executor=executor_from_env()), sqlmesh
    )


def _cache_dir(project: SQLMeshProject) -> str | None:
    return str(project.cache_dir) if project.cache_dir else None
