"""`sqlmesh_definitions`: one SQLMesh project as Dagster definitions, from Python.

What the component builds too: an asset per selected model, a check per audit, the
`SQLMeshResultsResource` that runs SQLMesh once per run, and the cron sensor. The resource names
the project, gateway and environment it was built for, so runs use those whatever MXM_ variables
the run worker sees.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import dagster as dg

from mxm_dagster.assets.automation import cron_sensor, sensor_name_for
from mxm_dagster.assets.conditions import (
    AUTOMATIONS,
    Automation,
    automation_sensor,
    automation_sensor_name_for,
)
from mxm_dagster.assets.loader import asset_keys_by_model, build_sqlmesh_assets, resource_key_for
from mxm_dagster.assets.observe import observe_sensor, observe_sensor_name_for, observed_assets
from mxm_dagster.assets.preview import plan_preview_job
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.common.garbage import built_to_last
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.selection import ModelSelection
from mxm_dagster.records.specs import LoadedModels
from mxm_dagster.run.resource import SQLMeshResultsResource

TranslatorArg = SQLMeshTranslator | type[SQLMeshTranslator] | None


def sqlmesh_definitions(
    project: SQLMeshProject | str | os.PathLike[str],
    *,
    translator: TranslatorArg = None,
    select: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    partitions: bool = False,
    provided_keys: Iterable[dg.AssetKey] = (),
    retry_policy: dg.RetryPolicy | None = None,
    name: str | None = None,
    observe: bool = False,
    automation: Automation = "sensor",
    freshness: bool = False,
    plan_preview: bool = True,
) -> dg.Definitions:
    """Assets, checks, `SQLMeshResultsResource` and cron sensor of `project` (a
    `SQLMeshProject`, or a folder: its default gateway, environment prod).

    `translator`: a `SQLMeshTranslator` subclass (built with the project's spec, `partitions`
    and `freshness`) or an instance (which keeps its own). `select` / `exclude`: SQLMesh model
    selection syntax, as `sqlmesh plan --select-model` takes it, resolved by SQLMesh in the
    child that loads the project. `partitions`: time partitions for INCREMENTAL_BY_TIME_RANGE
    models (ADR 5).
    `provided_keys`: asset keys other assets produce (no source spec for those).
    `retry_policy`: how Dagster retries a model's step whose model failed, for every model the
    translator's `get_retry_policy` gives none; a retried step runs SQLMesh again.
    `name`: names the project among others in one code location: its assets require resource
    `sqlmesh_<name>` and its sensor is `sqlmesh_<name>_cron` (default: `sqlmesh`, `sqlmesh_cron`).
    Two projects need distinct names, and distinct asset keys (a translator's key prefix) when
    their model names collide.
    `observe`: start the sensor `sqlmesh_observe` (`sqlmesh_<name>_observe`), which reports
    SQLMesh runs made outside Dagster as materializations; it exists stopped otherwise (ADR 15).
    `automation`: "sensor" (default) runs the models from the cron sensor; "cron" gives each model
    a declarative `AutomationCondition` on its SQLMesh cron, "cron_or_eager" also on any upstream
    update, evaluated by the automation daemon through the sensor `sqlmesh_automation`
    (`sqlmesh_<name>_automation`), the cron sensor then defined stopped (ADR 17). A translator's
    `get_automation_condition` wins for its models.
    `freshness`: give each model with a cron a Dagster freshness policy from it (the
    translator's `get_freshness_policy`); off by default, since every cron policy adds about
    20 ms per asset to each process that loads the asset graph (ADR 17).
    `plan_preview`: the job `sqlmesh_plan_preview` (`sqlmesh_<name>_plan_preview`), which shows
    on each asset what SQLMesh would do for a selection and applies nothing (ADR 18).
    """
    if not isinstance(project, SQLMeshProject):
        project = SQLMeshProject.at(os.fspath(project))
    spec = project.load_spec()
    resource = pinned_resource(project)
    return assemble(
        project,
        spec,
        make_translator(translator, spec, partitions, freshness),
        ModelSelection.of(select, exclude),
        resource,
        provided_keys,
        retry_policy=retry_policy,
        name=name,
        observe=observe,
        automation=automation,
        plan_preview=plan_preview,
    )


def pinned_resource(project: SQLMeshProject) -> SQLMeshResultsResource:
    """The resource that runs `project` as given: its folders, gateway, environment and cache
    folder, whatever MXM_ variables the run worker sees."""
    return SQLMeshResultsResource(
        project_dir=project.location,
        gateway=project.gateway,
        environment=project.environment,
        cache_dir=str(project.cache_dir) if project.cache_dir else None,
    )


def make_translator(
    translator: TranslatorArg, spec: LoadedModels, partitions: bool, freshness: bool = False
) -> SQLMeshTranslator:
    if translator is None:
        translator = SQLMeshTranslator
    if isinstance(translator, type):
        return translator(spec, time_partitions=partitions, freshness=freshness)
    if freshness and not translator.freshness:
        raise ValueError(
            "freshness=True with a translator instance built without it: pass the class, "
            "or build the instance with freshness=True"
        )
    return translator


@built_to_last()  # thousands of definitions, kept by the code server (ADR 23)
def assemble(
    project: SQLMeshProject,
    spec: LoadedModels,
    translator: SQLMeshTranslator,
    selection: ModelSelection | None,
    resource: SQLMeshResultsResource,
    provided_keys: Iterable[dg.AssetKey] = (),
    *,
    retry_policy: dg.RetryPolicy | None = None,
    name: str | None = None,
    observe: bool = False,
    automation: Automation = "sensor",
    plan_preview: bool = True,
) -> dg.Definitions:
    """The definitions of `spec`'s selected models, run by `resource` (under the key `name`
    gives). `observe` starts the sensor that reports SQLMesh runs made outside Dagster;
    `automation` picks the cron sensor or declarative conditions; `plan_preview` adds the job
    that previews SQLMesh's plan for a selection."""
    if automation not in AUTOMATIONS:
        raise ValueError(f"automation must be one of {', '.join(AUTOMATIONS)}, not {automation!r}")
    selected = project.selected_models(selection) if selection is not None else None
    models = [m for m in spec.models if selected is None or m.name in selected]
    keys = asset_keys_by_model(spec, translator)
    resource_key = resource_key_for(name)
    assets = build_sqlmesh_assets(
        spec,
        project.location,
        translator,
        provided_keys,
        selected,
        retry_policy,
        resource_key,
        automation,
    )
    model_keys = {name: key for name, key in keys.items() if selected is None or name in selected}
    declarative = []
    if automation != "sensor":
        built = [m.name for m in models if m.is_model and m.name in model_keys]
        declarative = [
            automation_sensor(
                [model_keys[m] for m in built], automation_sensor_name_for(resource_key)
            )
        ]
    jobs = [plan_preview_job(model_keys, resource_key, project.location)] if plan_preview else []
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        resources={resource_key: resource},
        sensors=[
            cron_sensor(
                models,
                model_keys,
                {m.name: translator.get_partitions_def(m) for m in models},
                sensor_name_for(resource_key),
                running=automation == "sensor",
            ),
            *declarative,
            observe_sensor(
                project,
                observed_assets(assets, keys),
                observe_sensor_name_for(resource_key),
                running=observe,
            ),
        ],
    )
