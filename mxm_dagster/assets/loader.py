"""One `@asset` per SQLMesh model and an AssetSpec per external source, from `LoadedModels`."""

import hashlib
from collections.abc import Collection, Iterable
from pathlib import Path

import dagster as dg

from mxm_dagster.asset_graph.metadata import MODEL_TAG, PROJECT_TAG
from mxm_dagster.assets.conditions import Automation, sqlmesh_automation_condition
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.common.names import safe_name
from mxm_dagster.records.specs import LoadedModels, ModelSpec

RESOURCE_KEY = "sqlmesh"  # the resource of the only (or an unnamed) project of a code location


def resource_key_for(name: str | None) -> str:
    """The resource key of a project's assets: `sqlmesh` for the only (unnamed) project of a
    code location, `sqlmesh_<name>` for a named one, so two projects' resources do not clash."""
    return RESOURCE_KEY if not name else f"{RESOURCE_KEY}_{safe_name(name)}"


def _unique_keys(
    models: Iterable[ModelSpec], translator: SQLMeshTranslator
) -> dict[str, dg.AssetKey]:
    """Translate every model's key; two models that would share a key get a hash suffix each."""
    keys = {m.name: translator.get_asset_key(m) for m in models}
    counts: dict[dg.AssetKey, int] = {}
    for key in keys.values():
        counts[key] = counts.get(key, 0) + 1
    for name, key in keys.items():
        if counts[key] > 1:
            suffix = hashlib.sha1(name.encode()).hexdigest()[:6]
            keys[name] = dg.AssetKey([*key.path[:-1], f"{key.path[-1]}_{suffix}"])
    return keys


def asset_keys_by_model(
    loaded: LoadedModels, translator: SQLMeshTranslator | None = None
) -> dict[str, dg.AssetKey]:
    """Model name -> asset key of every SQLMesh model (not external sources) of the project."""
    keys = _unique_keys(loaded.models, translator or SQLMeshTranslator(loaded))
    return {m.name: keys[m.name] for m in loaded.models if m.is_model}


def _model_asset(
    model: ModelSpec,
    spec: dg.AssetSpec,
    checks: list[dg.AssetCheckSpec],
    project_location: str,
    retry_policy: dg.RetryPolicy | None,
    resource_key: str = RESOURCE_KEY,
) -> dg.AssetsDefinition:
    """The step of one model: it reports that model's outcome from the run's shared execution.

    A one-spec `multi_asset` rather than `@asset`: only `can_subset=True` makes check outputs
    optional, and a check whose audit did not run (the model was up to date) must report nothing.
    The op name derives from the key (`schema__table`), already made of legal characters; a
    named project's ops start with its resource key, so a run's step keys say which project each
    step belongs to.
    """
    op_name = "__".join(spec.key.path)
    if resource_key != RESOURCE_KEY:
        op_name = f"{resource_key}__{op_name}"

    @dg.multi_asset(
        name=op_name,
        specs=[spec],
        check_specs=checks,
        can_subset=True,
        # A partition range is one run, hence one SQLMesh execution; also what lets
        # `dagster asset materialize --partition-range` run mixed selections in one run.
        backfill_policy=dg.BackfillPolicy.single_run(),
        op_tags={MODEL_TAG: model.name, PROJECT_TAG: project_location},
        required_resource_keys={resource_key},
        retry_policy=retry_policy,
    )
    def _sqlmesh_model(context: dg.AssetExecutionContext):  # type: ignore[no-untyped-def]
        yield from getattr(context.resources, resource_key).report_model(context, model.name)

    return _sqlmesh_model


def _wanted(loaded: LoadedModels, selected: Collection[str] | None) -> set[str]:
    """The selected models and the external sources they read; every model without selection."""
    if selected is None:
        return {m.name for m in loaded.models}
    models = {m.name for m in loaded.models if m.is_model and m.name in selected}
    read = {d for m in loaded.models if m.name in models for d in m.depends_on}
    return models | {m.name for m in loaded.models if m.is_external and m.name in read}


def build_sqlmesh_assets(
    loaded: LoadedModels,
    project_location: Path | str,
    translator: SQLMeshTranslator | None = None,
    provided_keys: Iterable[dg.AssetKey] = (),
    selected: Collection[str] | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    resource_key: str = RESOURCE_KEY,
    automation: Automation = "sensor",
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Loop over the project's models: one asset each, external sources as upstream specs.

    `provided_keys` are keys other Dagster assets already produce (a Python asset that loads an
    external table): no source spec is emitted for them, so lineage runs from that asset.
    `selected` (model names) keeps only those models; the external sources they read stay, and
    a model left out remains a dependency by its key, as dagster-dbt leaves unselected models.
    `retry_policy` is each model step's, unless the translator's `get_retry_policy` gives one.
    `resource_key`: the resource the model steps require (`resource_key_for` the project's name).
    `automation` other than "sensor" gives each model `sqlmesh_automation_condition` unless the
    translator's `get_automation_condition` gives one.
    """
    translator = translator or SQLMeshTranslator(loaded)
    keys = _unique_keys(loaded.models, translator)  # over every model: keys do not move
    provided = set(provided_keys)
    wanted = _wanted(loaded, selected)
    definitions: list[dg.AssetsDefinition | dg.AssetSpec] = []
    for model in loaded.models:
        if model.name not in wanted:
            continue
        key = keys[model.name]
        deps = [keys[d] for d in model.depends_on if d in keys]
        spec = translator.get_asset_spec(model, key, deps, keys)
        if model.is_external:
            if key not in provided:
                definitions.append(spec)
            continue
        if automation != "sensor" and spec.automation_condition is None:
            condition = sqlmesh_automation_condition(model, eager=automation == "cron_or_eager")
            spec = spec.replace_attributes(automation_condition=condition)
        checks = translator.get_check_specs(model, key, keys)
        policy = translator.get_retry_policy(model) or retry_policy
        definitions.append(
            _model_asset(model, spec, checks, str(project_location), policy, resource_key)
        )
    return definitions
