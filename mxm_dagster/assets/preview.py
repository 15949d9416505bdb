"""The plan preview job: what SQLMesh would do for a selection, shown before anything runs.

One op job per project (`sqlmesh_plan_preview`, `sqlmesh_<name>_plan_preview`), run with the
same resource and run config as a materialization (environment, `execution_time`, `restate`,
`allow_destructive`, the `mxm/` tags), plus which assets to preview and a partition window. Its
step records an asset observation for every model the plan changes, fills or refuses, and one
markdown summary as its output's metadata. It materializes nothing and runs no check (ADR 18).
"""

from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from mxm_dagster.asset_graph.metadata import PROJECT_TAG
from mxm_dagster.run import preview as run_preview
from mxm_dagster.run.resource import SQLMeshResultsResource

SUMMARY_METADATA_KEY = "sqlmesh/plan_preview"


def preview_job_name_for(resource_key: str) -> str:
    """`sqlmesh_plan_preview` for the resource `sqlmesh`, `sqlmesh_<name>_plan_preview` else."""
    return f"{resource_key}_plan_preview"


class PlanPreviewConfig(dg.Config):
    """Which models to preview, and the partition window a partitioned run would have."""

    assets: list[str] = Field(
        default_factory=list,
        description="Asset keys of the models to preview, as the CLI spells them "
        "('marts/risk_metrics'); default: every model of the project here",
    )
    start: str | None = Field(
        default=None,
        description="A partitioned run's window: the first partition's start, e.g. "
        "'2026-11-01' (UTC); with `end`",
    )
    end: str | None = Field(
        default=None, description="A partitioned run's window: the last partition's end (UTC)"
    )


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window(config: PlanPreviewConfig) -> tuple[datetime, datetime] | None:
    if config.start is None and config.end is None:
        return None
    if config.start is None or config.end is None:
        raise dg.Failure(description="A window needs both `start` and `end`")
    return _utc(config.start), _utc(config.end)


def _models(config: PlanPreviewConfig, keys: Mapping[str, dg.AssetKey]) -> set[str]:
    if not config.assets:
        return set(keys)
    by_key = {key: model for model, key in keys.items()}
    wanted = [dg.AssetKey.from_user_string(text) for text in config.assets]
    unknown = [key.to_user_string() for key in wanted if key not in by_key]
    if unknown:
        raise dg.Failure(
            description=f"Not SQLMesh models of this project: {', '.join(unknown)}; "
            f"its assets are {', '.join(sorted(k.to_user_string() for k in by_key))}"
        )
    return {by_key[key] for key in wanted}


def plan_preview_job(
    keys: Mapping[str, dg.AssetKey], resource_key: str, project_location: str
) -> dg.JobDefinition:
    """The preview job of the models `keys` names (model -> asset key), run by the resource at
    `resource_key`."""
    name = preview_job_name_for(resource_key)
    models = dict(keys)

    @dg.op(
        name=f"{resource_key}_build_plan",  # not the job's name: Dagster keeps node names apart
        required_resource_keys={resource_key},
        tags={PROJECT_TAG: project_location},
        out=dg.Out(dg.Nothing),  # the summary is the output's metadata; nothing is stored
        description="Builds SQLMesh's plan for the selected models without applying it and "
        "records what it would change and fill on each asset",
    )
    def plan_preview(context: dg.OpExecutionContext, config: PlanPreviewConfig) -> dg.Output:
        resource: SQLMeshResultsResource = getattr(context.resources, resource_key)
        selected = _models(config, models)
        found = run_preview.preview(resource, context, selected, _window(config))
        for observation in run_preview.observations(found, models):
            context.log_event(observation)
        if found.error:
            context.log.warning(f"A run would fail before SQLMesh applies anything: {found.error}")
        elif found.refused:
            context.log.warning(
                "A run would be refused: destructive change to " + ", ".join(found.refused)
            )
        return dg.Output(
            None,
            metadata={
                SUMMARY_METADATA_KEY: dg.MetadataValue.md(
                    run_preview.summary(found, models, len(selected))
                ),
                "sqlmesh/changed": sum(1 for m in found.models.values() if m.category),
                "sqlmesh/to_fill": sum(1 for m in found.models.values() if m.intervals),
                "sqlmesh/refused": ", ".join(found.refused),
                "sqlmesh/error": found.error or "",
            },
        )

    @dg.job(
        name=name,
        description="What SQLMesh would do for a selection, before anything runs: each changed "
        "model's category and diff, the intervals it would fill, destructive changes it would "
        "refuse; recorded as asset observations, nothing applied",
    )
    def preview_job() -> None:
        plan_preview()

    return preview_job
