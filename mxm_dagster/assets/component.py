"""`SQLMeshProjectComponent`: a SQLMesh project as a `dg` component, declared in a defs.yaml.

    type: mxm_dagster.SQLMeshProjectComponent
    attributes:
      project: "{{ context.project_root }}/sqlmesh_project"
      gateway: local             # default: the project's default gateway
      environment: prod
      name: shop                 # one of several projects here: resource sqlmesh_shop
      partitions: false          # time partitions for INCREMENTAL_BY_TIME_RANGE models (ADR 5)
      observe: false             # true: report SQLMesh runs made outside Dagster (ADR 15)
      automation: sensor         # or cron / cron_or_eager: declarative automation (ADR 17)
      freshness: false           # true: freshness policies from the models' crons (ADR 17)
      plan_preview: true         # the job previewing SQLMesh's plan for a selection (ADR 18)
      select: ["+marts.*"]       # SQLMesh model selection syntax; default every model
      exclude: ["tag:wip"]
      retry_policy:              # each model step's Dagster RetryPolicy; a retry runs SQLMesh again
        max_retries: 2
        delay: 60                # seconds
        backoff: EXPONENTIAL     # or LINEAR
        jitter: PLUS_MINUS       # or FULL
      translation:               # Dagster's standard asset attributes, over SQLMeshTranslator's
        group_name: warehouse
        key_prefix: sqlmesh

It builds what `sqlmesh_definitions` builds, its `SQLMeshResultsResource` under the key `sqlmesh`
(`sqlmesh_<name>`); the spec cache stays this package's own cache rather than Dagster's defs
state (docs/adr/0011).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from dagster.components.resolved.context import ResolutionContext
from dagster.components.resolved.model import Model
from dagster.components.utils.translation import ResolvedTranslationFn, TranslationFn
from pydantic import BaseModel

from mxm_dagster.assets.builder import assemble, pinned_resource
from mxm_dagster.assets.conditions import Automation
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.request import PROD
from mxm_dagster.records.selection import ModelSelection
from mxm_dagster.records.specs import LoadedModels, ModelSpec


class TranslatedSQLMeshTranslator(SQLMeshTranslator):
    """`SQLMeshTranslator`'s properties, then the component's `translation` on top (template
    vars: `data` the ModelSpec, `spec` the AssetSpec so far). The key comes from the translated
    spec, so `key` / `key_prefix` also move the dependencies that point at a model."""

    def __init__(
        self,
        loaded: LoadedModels,
        time_partitions: bool,
        translation: TranslationFn[ModelSpec] | None,
        freshness: bool = False,
    ) -> None:
        super().__init__(loaded, time_partitions, freshness)
        self.translation = translation
        self._translated: dict[str, dg.AssetSpec] = {}

    def _translate(self, model: ModelSpec, spec: dg.AssetSpec) -> dg.AssetSpec:
        return self.translation(spec, model) if self.translation else spec

    def get_asset_key(self, model: ModelSpec) -> dg.AssetKey:
        if model.name not in self._translated:
            base = super().get_asset_spec(model, super().get_asset_key(model), [])
            self._translated[model.name] = self._translate(model, base)
        return self._translated[model.name].key

    def get_asset_spec(
        self,
        model: ModelSpec,
        key: dg.AssetKey,
        deps: list[dg.AssetKey],
        keys: Mapping[str, dg.AssetKey] | None = None,
    ) -> dg.AssetSpec:
        base = super().get_asset_spec(model, super().get_asset_key(model), deps, keys)
        return self._translate(model, base).replace_attributes(key=key)


class RetryPolicyModel(dg.Resolvable, Model):
    """`dg.RetryPolicy` in YAML, as Dagster's own components spell an op's `retry_policy`:
    `max_retries`, `delay` (seconds), `backoff` (LINEAR, EXPONENTIAL), `jitter` (FULL,
    PLUS_MINUS). Dagster 1.13 ships no resolvable RetryPolicy, hence this one."""

    max_retries: int = 1
    delay: float | None = None
    backoff: dg.Backoff | None = None
    jitter: dg.Jitter | None = None


def _resolve_retry_policy(
    context: ResolutionContext, model: RetryPolicyModel | None
) -> dg.RetryPolicy | None:
    if model is None:
        return None
    return dg.RetryPolicy(
        max_retries=model.max_retries, delay=model.delay, backoff=model.backoff, jitter=model.jitter
    )


ResolvedRetryPolicy = Annotated[
    dg.RetryPolicy | None,
    dg.Resolver(_resolve_retry_policy, model_field_type=RetryPolicyModel),
]


#: Where a load's component tree keeps which component built each asset key (see `_claim_keys`).
_CLAIMS_ATTRIBUTE = "_mxm_sqlmesh_asset_keys"


def _asset_keys(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec | None]:
    """Every asset key of `defs` -> its source spec (an external table), None for a model's."""
    keys: dict[dg.AssetKey, dg.AssetSpec | None] = {}
    for asset in defs.assets or ():
        if isinstance(asset, dg.AssetSpec):
            keys.setdefault(asset.key, asset)
        elif isinstance(asset, dg.AssetsDefinition):
            keys.update(dict.fromkeys(asset.keys))
    return keys


def _claim_keys(context: dg.ComponentLoadContext, defs: dg.Definitions, owner: str) -> None:
    """Fail the load when another SQLMesh component of it already built one of `defs`' keys.

    Dagster's own error, raised once everything is merged, names the key only ("Duplicate asset
    key") or prints both specs; here both projects are known. Two projects may declare the same
    external table only with equal source specs (Dagster merges those, as it decides). The claims
    live on the load's component tree, so they last one load (a second load, or another dg
    project in the process, starts afresh).
    """
    tree = context.component_tree
    claims: dict[dg.AssetKey, tuple[str, dg.AssetSpec | None]] | None = getattr(
        tree, _CLAIMS_ATTRIBUTE, None
    )
    if claims is None:
        claims = {}
        try:
            setattr(tree, _CLAIMS_ATTRIBUTE, claims)
        except AttributeError:  # a tree that takes no attribute: Dagster's error remains
            return
    keys = _asset_keys(defs)
    taken = sorted(
        (
            key
            for key, source in keys.items()
            if key in claims
            and claims[key][0] != owner
            and (source is None or claims[key][1] is None or source != claims[key][1])
        ),
        key=lambda k: k.path,
    )
    if taken:
        first = taken[0]
        other, other_source = claims[first]
        more = f" (and {len(taken) - 1} more keys)" if len(taken) > 1 else ""
        if other_source is None and keys[first] is None:
            hint = "Give one a `translation: {key_prefix: ...}` (README, Two SQLMesh projects)"
        else:
            hint = (
                "One of them reads it as an external table: if both mean the same table, set "
                "`external_assets: false` on a component reading it, else give one a "
                "`translation: {key_prefix: ...}`"
            )
        raise ProjectLoadError(
            f"Asset key {first.to_user_string()}{more} comes from two SQLMesh projects: "
            f"{other} and {owner}. {hint}"
        )
    for key, source in keys.items():
        if key not in claims or source is None:
            claims[key] = (owner, source)


class SQLMeshProjectScaffoldParams(BaseModel):
    """`dg scaffold defs mxm_dagster.SQLMeshProjectComponent NAME --project PATH [...]`."""

    project: str | None = None
    gateway: str | None = None
    environment: str | None = None


class SQLMeshProjectScaffolder(dg.Scaffolder[SQLMeshProjectScaffoldParams]):
    """Writes a defs.yaml pointing at the project (default: `sqlmesh_project` at the dg project's
    root). A path inside the dg project is written relative to `{{ context.project_root }}`, so
    the YAML keeps working wherever the project is checked out."""

    @classmethod
    def get_scaffold_params(cls) -> type[SQLMeshProjectScaffoldParams]:
        return SQLMeshProjectScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[SQLMeshProjectScaffoldParams]) -> None:
        params = request.params or SQLMeshProjectScaffoldParams()
        attributes: dict[str, Any] = {"project": _project_reference(request, params.project)}
        if params.gateway:
            attributes["gateway"] = params.gateway
        if params.environment:
            attributes["environment"] = params.environment
        dg.scaffold_component(request, attributes)


def _project_reference(request: dg.ScaffoldRequest[Any], project: str | None) -> str:
    root = request.project_root
    if project is None:
        return "{{ context.project_root }}/sqlmesh_project"
    path = Path(project).expanduser()
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    if root is not None and path.is_relative_to(root.resolve()):
        return "{{ context.project_root }}/" + path.relative_to(root.resolve()).as_posix()
    return str(path)


@dg.scaffold_with(SQLMeshProjectScaffolder)
@dataclass
class SQLMeshProjectComponent(dg.Component, dg.Resolvable):
    """A SQLMesh project: one asset per model, one check per audit, SQLMesh once per run.

    Attributes:
        project: The SQLMesh project folder (holding config.yaml); relative paths are taken from
            this defs.yaml's folder. `{{ context.project_root }}` names the dg project's root.
        gateway: The SQLMesh gateway runs use; default: the project's default gateway.
        environment: The SQLMesh environment runs plan and promote into.
        name: Names the project among several in one code location: its assets require the
            `SQLMeshResultsResource` under the key `sqlmesh_<name>`, its sensor is
            `sqlmesh_<name>_cron`; default `sqlmesh`.
            Projects whose model names collide also need a `translation` key_prefix.
        partitions: Time partitions for INCREMENTAL_BY_TIME_RANGE models (off by default).
        observe: Start the sensor `sqlmesh_observe` (`sqlmesh_<name>_observe`), which reports
            SQLMesh runs made outside Dagster as materializations (off by default).
        automation: `sensor` (default): the cron sensor runs the models whose cron ticked;
            `cron`: each model gets a declarative AutomationCondition on its cron, evaluated by
            Dagster's automation daemon (sensor `sqlmesh_automation`); `cron_or_eager`: on its
            cron and when an upstream asset updates (ADR 17).
        freshness: Give each model with a cron a Dagster freshness policy from it (off by
            default: every policy adds about 20 ms per asset to each process that loads the
            asset graph, ADR 17).
        plan_preview: Add the job `sqlmesh_plan_preview` (`sqlmesh_<name>_plan_preview`),
            which records on each asset what SQLMesh would do for a selection, applying
            nothing (on by default).
        select: SQLMesh model selection (as `sqlmesh plan --select-model`); default every model.
        exclude: SQLMesh model selection to leave out.
        external_assets: Emit the project's external models as source assets; false when other
            definitions produce those tables under the same keys.
        retry_policy: How Dagster retries a model's step when its model fails (`max_retries`,
            `delay`, `backoff`, `jitter`); a retried step runs SQLMesh again (README, Retries).
            A translator's `get_retry_policy` wins for its models.
        translation: Dagster's asset attributes (group_name, tags, owners, kinds, key_prefix,
            ...) applied over the translator's; `{{ data }}` is the model's ModelSpec.
    """

    project: str
    gateway: str | None = None
    environment: str = PROD
    name: str | None = None
    partitions: bool = False
    observe: bool = False
    automation: Automation = "sensor"
    freshness: bool = False
    plan_preview: bool = True
    select: list[str] | None = None
    exclude: list[str] | None = None
    external_assets: bool = True
    retry_policy: ResolvedRetryPolicy = None
    translation: ResolvedTranslationFn[ModelSpec] = None

    def sqlmesh_project(self, context: dg.ComponentLoadContext) -> SQLMeshProject:
        path = Path(self.project).expanduser()
        if not path.is_absolute():
            path = context.path / path
        return SQLMeshProject.at(str(path), gateway=self.gateway, environment=self.environment)

    def get_translator(self, spec: LoadedModels) -> SQLMeshTranslator:
        """Override to start from your own `SQLMeshTranslator` subclass (pass it `partitions` and
        `freshness` as `time_partitions` and `freshness`)."""
        return TranslatedSQLMeshTranslator(
            spec, self.partitions, self.translation, freshness=self.freshness
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        project = self.sqlmesh_project(context)
        spec = project.load_spec()
        translator = self.get_translator(spec)
        provided = (
            []
            if self.external_assets
            else [translator.get_asset_key(m) for m in spec.models if m.is_external]
        )
        resource = pinned_resource(project)
        selection = ModelSelection.of(self.select, self.exclude)
        defs = assemble(
            project,
            spec,
            translator,
            selection,
            resource,
            provided,
            retry_policy=self.retry_policy,
            name=self.name,
            observe=self.observe,
            automation=self.automation,
            plan_preview=self.plan_preview,
        )
        _claim_keys(context, defs, f"{project.location} (declared in {context.path})")
        return defs
