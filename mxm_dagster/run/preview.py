"""A plan preview in the run worker: the request a run would make, previewed by a SQLMesh child,
reported as one asset observation per model it concerns and one summary (ADR 18).

The request is the resource's (`SQLMeshResultsResource.request`: environment, restatement,
execution time, destructive changes allowed, partition window), so a preview with a run's config
shows what that run would do. Observations carry no data version: they change no staleness.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import dagster as dg

from mxm_dagster.asset_graph.metadata import MODEL_NAME_METADATA_KEY
from mxm_dagster.common.times import iso_from_ms
from mxm_dagster.project.protocol import ChildOrder
from mxm_dagster.records.preview import ModelPreview, PlanPreview
from mxm_dagster.run.child import preview_in_child
from mxm_dagster.run.resource import SQLMeshResultsResource

DESCRIPTION = "SQLMesh plan preview: what a run would do; nothing was applied"


def preview(
    resource: SQLMeshResultsResource,
    context: dg.OpExecutionContext,
    models: set[str],
    window: tuple[datetime, datetime] | None,
) -> PlanPreview:
    """What SQLMesh would do for `models` in a run with this resource's config and this run's
    tags, from a SQLMesh child that plans under the run's locks and applies nothing."""
    project = resource.project(context)
    request = resource.request(context, project, models, window)
    order = ChildOrder(
        project,
        request,
        resource.lock_timeout_seconds,
        resource.warehouse_wait_seconds,
        resource.execution_timeout_seconds,
        preview=True,
    )
    context.log.info(
        f"Previewing SQLMesh's plan for {len(models)} selected models in environment "
        f"{project.environment!r} of {project.path}; nothing is applied"
    )
    return preview_in_child(order, context.log.info)


def _span(intervals: Collection[tuple[int, int]]) -> str:
    if not intervals:
        return "nothing"
    first, last = min(a for a, _ in intervals), max(b for _, b in intervals)
    count = len(intervals)
    return (
        f"{count} interval{'s' if count != 1 else ''} [{iso_from_ms(first)}, {iso_from_ms(last)})"
    )


def spans(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Contiguous intervals joined: what an hourly model's thousands of intervals cover, in a
    few [start, end) ranges."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        else:
            joined.append((start, end))
    return joined


def observation_metadata(model: ModelPreview, plan: PlanPreview) -> dict[str, Any]:
    """What the asset's page shows of the model's place in the plan."""
    metadata: dict[str, Any] = {
        MODEL_NAME_METADATA_KEY: model.model,
        "sqlmesh/environment": plan.environment,
        "sqlmesh/execution_time": iso_from_ms(plan.execution_time),
        "sqlmesh/change": model.change,
        "sqlmesh/change_category": model.category or "",
        "sqlmesh/forward_only": model.forward_only,
        "sqlmesh/interval_count": len(model.intervals),
        "sqlmesh/intervals_to_fill": _span(model.intervals),
        "sqlmesh/restated": model.restated,
        "sqlmesh/destructive_refused": bool(model.refused),
    }
    if model.intervals:
        metadata["sqlmesh/fill_spans"] = dg.MetadataValue.json(
            [[iso_from_ms(a), iso_from_ms(b)] for a, b in spans(model.intervals)]
        )
    if model.modified_by:
        metadata["sqlmesh/modified_by"] = ", ".join(model.modified_by)
    if model.diff:
        metadata["sqlmesh/diff"] = dg.MetadataValue.md(f"```diff\n{model.diff.rstrip()}\n```")
    if model.refused:
        metadata["sqlmesh/destructive_change"] = dg.MetadataValue.md(
            f"```\n{model.refused.strip()}\n```"
        )
    return metadata


def observations(plan: PlanPreview, keys: Mapping[str, dg.AssetKey]) -> list[dg.AssetObservation]:
    """One observation per model of the plan that has an asset here (`keys`: model -> key)."""
    return [
        dg.AssetObservation(
            asset_key=keys[name],
            description=f"{DESCRIPTION}: {_headline(model)}",
            metadata=observation_metadata(model, plan),
        )
        for name, model in sorted(plan.models.items())
        if name in keys
    ]


def _headline(model: ModelPreview) -> str:
    parts = [f"{model.change} change" if model.change != "unchanged" else "unchanged"]
    if model.refused:
        parts.append("destructive change refused")
    parts.append(f"fills {_span(model.intervals)}")
    return "; ".join(parts)


def summary(plan: PlanPreview, keys: Mapping[str, dg.AssetKey], selected: int) -> str:
    """The run's one summary, in markdown: the verdict, then a row per model of the plan."""
    lines = [
        f"## SQLMesh plan preview: environment `{plan.environment}`, "
        f"as of {iso_from_ms(plan.execution_time)}",
        "",
        f"{selected} models selected; nothing was applied.",
        "",
    ]
    if plan.error:
        lines += [f"**A run would fail** before SQLMesh applies anything: {plan.error}", ""]
    elif plan.refused:
        lines += [
            "**A run would be refused**: destructive change to "
            + ", ".join(f"`{m}`" for m in plan.refused)
            + " (a forward-only model). Nothing would run. Allow it with the resource config "
            "`allow_destructive`, or revert the change. The rest of the plan is shown as it "
            "would be once allowed.",
            "",
        ]
    else:
        lines += ["A run would apply this plan.", ""]
    if plan.fills_after:
        lines += [
            "This run plans without filling what the crons made due, then runs what is still "
            "due (`sqlmesh run`): both are counted below.",
            "",
        ]
    lines += [f"- {message}" for message in plan.messages] + ([""] if plan.messages else [])
    if plan.models:
        lines += [
            "| model | asset | change | category | forward-only | fills | refused |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, model in sorted(plan.models.items()):
            key = keys.get(name)
            lines.append(
                f"| `{name}` | {key.to_user_string() if key else '(no asset)'} | {model.change} "
                f"| {model.category or ''} | {'yes' if model.forward_only else ''} "
                f"| {_span(model.intervals)} | {'**yes**' if model.refused else ''} |"
            )
    else:
        lines.append("SQLMesh would change and fill nothing.")
    return "\n".join(lines)
