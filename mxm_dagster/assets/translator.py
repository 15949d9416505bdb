"""Model -> Dagster asset properties; subclass and override one method to customise one property."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg

from mxm_dagster.asset_graph import partitions
from mxm_dagster.asset_graph.metadata import MODEL_KIND_METADATA_KEY, MODEL_NAME_METADATA_KEY
from mxm_dagster.assets.freshness import DEFAULT_GRACE, cron_freshness_policy
from mxm_dagster.common.deprecation import warn_renamed
from mxm_dagster.common.names import safe_name
from mxm_dagster.records.specs import AuditSpec, LoadedModels, ModelSpec

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SQLMeshTranslator:
    """Decides how a SQLMesh model appears in Dagster.

    Like dagster-dbt's `DagsterDbtTranslator`: one method per property, combined by
    `get_asset_spec`. The default key is `[schema, table]`, prefixed by the catalog when the model
    lives outside the project's default catalog. `time_partitions` turns on time partitions for
    the project (off by default, ADR 5); override `get_partitions_def` to decide per model.
    `freshness` turns on freshness policies from the models' crons (off by default, ADR 17);
    override `get_freshness_policy` to decide per model.
    """

    def __init__(
        self, loaded: LoadedModels, time_partitions: bool = False, freshness: bool = False
    ) -> None:
        self.loaded = loaded  # the project's models as SQLMesh loaded them
        self.time_partitions = time_partitions
        self.freshness = freshness

    @property
    def project(self) -> LoadedModels:
        """`loaded`'s name before "project" came to mean `SQLMeshProject` alone (docs/names.md)."""
        warn_renamed(type(self).__name__, "project", "loaded", stacklevel=2)
        return self.loaded

    def get_asset_key(self, model: ModelSpec) -> dg.AssetKey:
        parts = [model.schema, model.table]
        if model.catalog and model.catalog != self.loaded.default_catalog:
            parts.insert(0, model.catalog)
        return dg.AssetKey([safe_name(p) for p in parts if p])

    def get_group_name(self, model: ModelSpec) -> str | None:
        return safe_name(model.schema) if model.schema else None

    def get_description(self, model: ModelSpec) -> str | None:
        return model.description or f"SQLMesh {model.kind} model {model.name}"

    def get_owners(self, model: ModelSpec) -> list[str]:
        if not model.owner:
            return []
        owners = [o.strip() for o in model.owner.split(",") if o.strip()]
        return [o if _EMAIL.match(o) else f"team:{safe_name(o)}" for o in owners]

    def get_tags(self, model: ModelSpec) -> dict[str, str]:
        return {safe_name(tag): "" for tag in model.tags}

    def get_kinds(self, model: ModelSpec) -> set[str]:
        return {"sqlmesh", self.loaded.engine}

    def get_code_version(self, model: ModelSpec) -> str | None:
        return model.data_hash

    def get_metadata(self, model: ModelSpec) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            MODEL_NAME_METADATA_KEY: model.name,
            MODEL_KIND_METADATA_KEY: model.kind,
            "dagster/table_name": ".".join(
                p.strip('"') for p in (model.catalog, model.schema, model.table) if p
            ),
        }
        if model.columns:
            metadata["dagster/column_schema"] = dg.TableSchema(
                columns=[
                    dg.TableColumn(name=c.name, type=c.type, description=c.description)
                    for c in model.columns
                ]
            )
        optional = {
            "sqlmesh/cron": model.cron,
            "sqlmesh/interval_unit": model.interval_unit,
            "sqlmesh/start": model.start,
            "sqlmesh/time_column": model.time_column,
            "sqlmesh/grain": ", ".join(model.grain) if model.grain else None,
            "sqlmesh/file": model.file_path,
        }
        metadata.update({k: v for k, v in optional.items() if v})
        code_references = self.get_code_references(model)
        if code_references is not None:
            metadata["dagster/code_references"] = code_references
        return metadata

    def get_code_references(self, model: ModelSpec) -> dg.CodeReferencesMetadataValue | None:
        """The model's file (and the line its definition starts at), which the UI links to.

        Dagster marks code references beta and warns on each construction; the warning says
        nothing to a data engineer, so only that one is silenced, here. Pass the assets through
        `dg.link_code_references_to_git` to link to a repository instead of local files.
        """
        if not model.file_path:
            return None
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"Class `(LocalFileCodeReference|CodeReferencesMetadataValue)`",
                category=dg.BetaWarning,
            )
            reference = dg.LocalFileCodeReference(
                file_path=model.file_path, line_number=model.file_line
            )
            return dg.CodeReferencesMetadataValue(code_references=[reference])

    def get_column_lineage(
        self, model: ModelSpec, keys: Mapping[str, dg.AssetKey]
    ) -> dg.TableColumnLineage | None:
        """Each output column -> the upstream asset columns SQLMesh's lineage says it reads;
        `keys` maps model names (external sources and seeds included) to asset keys. None for a
        model without lineage (Python, seed and external models)."""
        deps_by_column = {
            lineage.column: [
                dg.TableColumnDep(asset_key=keys[dep.model], column_name=dep.column)
                for dep in lineage.deps
                if dep.model in keys
            ]
            for lineage in model.column_lineage
        }
        deps_by_column = {column: deps for column, deps in deps_by_column.items() if deps}
        return dg.TableColumnLineage(deps_by_column=deps_by_column) if deps_by_column else None

    def get_check_specs(
        self,
        model: ModelSpec,
        key: dg.AssetKey,
        keys: Mapping[str, dg.AssetKey] | None = None,
    ) -> list[dg.AssetCheckSpec]:
        """One check per audit. A standalone audit's check also depends on the other models it
        queries (`keys` maps model names to asset keys); a `skip` audit's never gates anything."""
        keys = keys or {}
        return [
            dg.AssetCheckSpec(
                name=audit.check_name,
                asset=key,
                blocking=audit.blocking and not audit.skip,
                description=self._audit_description(audit),
                additional_deps=[keys[name] for name in audit.reads if name in keys] or None,
                metadata={"sqlmesh/audit": audit.name},
            )
            for audit in model.audits
        ]

    def get_partitions_def(self, model: ModelSpec) -> dg.PartitionsDefinition | None:
        """Time partitions (one per SQLMesh interval) for INCREMENTAL_BY_TIME_RANGE models, when
        the project turned them on; None (unpartitioned) otherwise.

        A subclass may return `partitions.partitions_def_from_model(model)` or None per model,
        whatever the project setting. Only time-window partitions map onto SQLMesh intervals.
        """
        return partitions.partitions_def_from_model(model) if self.time_partitions else None

    def get_automation_condition(self, model: ModelSpec) -> dg.AutomationCondition | None:
        """The model's declarative automation; None: the builder's `automation` option decides
        (default: none, the cron sensor runs the models). `automation.sqlmesh_automation_condition`
        builds the condition that option gives, to start from."""
        return None

    #: With `freshness` on: how long after a cron tick the newly due interval may stay unfilled
    #: before the model shows stale (overdue); cut to the shortest gap between two ticks of the
    #: model's cron.
    freshness_grace: timedelta = DEFAULT_GRACE

    def get_freshness_policy(self, model: ModelSpec) -> dg.FreshnessPolicy | None:
        """With `freshness` on, Dagster's freshness from the model's SQLMesh cron: fresh while it
        was materialized after its last cron tick, or that tick is less than `freshness_grace`
        ago; None with it off (the default: every policy costs each process that loads the asset
        graph, ADR 17). Return any `dg.FreshnessPolicy` or None, whatever the switch."""
        if not self.freshness:
            return None
        return cron_freshness_policy(model, self.freshness_grace)

    def get_retry_policy(self, model: ModelSpec) -> dg.RetryPolicy | None:
        """How Dagster retries the model's step when the model fails; None: the builder's
        `retry_policy` (default none). A retried step runs SQLMesh again for the model and the
        models of the run it blocks, as one new execution (README, Retries)."""
        return None

    def get_asset_spec(
        self,
        model: ModelSpec,
        key: dg.AssetKey,
        deps: list[dg.AssetKey],
        keys: Mapping[str, dg.AssetKey] | None = None,
    ) -> dg.AssetSpec:
        """Everything above in one AssetSpec; `key` and `deps` come already de-duplicated, `keys`
        maps every model name to its asset key (for column lineage)."""
        metadata = self.get_metadata(model)
        column_lineage = self.get_column_lineage(model, keys or {})
        if column_lineage is not None:
            metadata["dagster/column_lineage"] = column_lineage
        return dg.AssetSpec(
            key=key,
            deps=deps,
            description=self.get_description(model),
            group_name=self.get_group_name(model),
            owners=self.get_owners(model),
            tags=self.get_tags(model),
            kinds=self.get_kinds(model),
            code_version=self.get_code_version(model),
            metadata=metadata,
            partitions_def=self.get_partitions_def(model),
            automation_condition=self.get_automation_condition(model),
            freshness_policy=self.get_freshness_policy(model),
        )

    @staticmethod
    def _audit_description(audit: AuditSpec) -> str:
        rendered = ", ".join(f"{k} := {v}" for k, v in audit.args.items())
        kind = "blocking" if audit.blocking else "non-blocking"
        if audit.standalone:
            text = f"SQLMesh standalone audit {audit.name}, {kind}"
        else:
            text = f"SQLMesh audit {audit.name}({rendered}), {kind}"
        if audit.skip:
            text += "; skipped (`skip true`): SQLMesh never runs it, so it reports nothing"
        return text
