"""A SQLMesh plan built and never applied, read into `records.preview` (ADR 18).

`Context.plan_builder(...).build()` categorises every change, computes the context diff and
the missing intervals, and stops: snapshots are pushed to state and tables written only by
`apply`, which nothing here calls. The arguments are `state.plan_arguments`, the ones a run's
plan gets, so the preview is the plan the run would apply.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlmesh import Context
from sqlmesh.core.plan.stages import build_plan_stages
from sqlmesh.core.snapshot import SnapshotChangeCategory
from sqlmesh.utils.errors import PlanError

from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.child.sqlmesh_api.console import ANSI
from mxm_dagster.child.sqlmesh_api.state import recursion_headroom
from mxm_dagster.records.preview import ModelPreview

_CHANGES = {
    SnapshotChangeCategory.BREAKING: "breaking",
    SnapshotChangeCategory.NON_BREAKING: "non-breaking",
    SnapshotChangeCategory.FORWARD_ONLY: "forward-only",  # deprecated by SQLMesh, still readable
    SnapshotChangeCategory.INDIRECT_BREAKING: "indirect breaking",
    SnapshotChangeCategory.INDIRECT_NON_BREAKING: "indirect non-breaking",
    SnapshotChangeCategory.METADATA: "metadata",
}


def build_plan(
    context: Context,
    recorder: OutcomeRecorder,
    arguments: Mapping[str, Any],
) -> tuple[Any, dict[str, str]]:
    """The plan `state.plan_arguments` describe (`arguments`), built and not applied, and the
    models whose destructive change SQLMesh refuses, with its account of each.

    SQLMesh's builder stops at the first refused model (the console's `log_destructive_change`
    with `error=True`, then a bare `PlanError`). To show the rest of the plan too, each refused
    model is allowed in a new build, until a build succeeds: the plan a run would apply once
    those changes are allowed. Any other refusal is raised."""
    refused: dict[str, str] = {}
    allowed = list(arguments.get("allow_destructive_models") or ())
    names = sum(len(arguments.get(k) or ()) for k in ("select_models", "backfill_models"))
    while True:
        recorder.destructive_changes.clear()  # what this build's builder refuses
        try:
            with recursion_headroom(names):
                builder = context.plan_builder(
                    **{**arguments, "allow_destructive_models": allowed or None}
                )
                return builder.build(), refused
        except PlanError as exc:
            new = {m: d for m, d in recorder.destructive_changes.items() if m not in refused}
            if type(exc) is not PlanError or not new:  # no destructive refusal: SQLMesh's error
                raise
            refused.update(new)
            allowed.extend(new)


def check_stages(context: Context, plan: Any) -> None:
    """Raise what applying `plan` would raise before SQLMesh does anything: its plan evaluator
    first builds the plan's stages from the plan and state (`build_plan_stages`, which SQLMesh
    states has no side effect on state or warehouse), and some plans fail there, e.g. a dev plan
    whose default start falls after its end."""
    build_plan_stages(plan.to_evaluatable(), context.state_reader, context.default_catalog)


def model_previews(plan: Any, refused: Mapping[str, str]) -> dict[str, ModelPreview]:
    """Every model the plan adds, changes, removes, fills or refuses, from SQLMesh's objects:
    the categorised snapshots, `directly_modified` / `indirectly_modified`, the context diff's
    text diff, the plan's missing intervals and restatements."""
    diff = plan.context_diff
    snapshots = diff.snapshots
    previews: dict[str, ModelPreview] = {}

    def preview(name: str) -> ModelPreview:
        return previews.setdefault(name, ModelPreview(model=name, change="unchanged"))

    for s_id in plan.directly_modified:
        snapshot = snapshots[s_id]
        if not snapshot.is_model:
            continue
        found = preview(s_id.name)
        _categorised(found, snapshot)
        if s_id in diff.added:
            found.change = "added"
        found.diff = diff.text_diff(s_id.name)
    for parent, children in plan.indirectly_modified.items():
        for s_id in children:
            snapshot = snapshots[s_id]
            if not snapshot.is_model:
                continue
            found = preview(s_id.name)
            if found.category is None:
                _categorised(found, snapshot)
            found.modified_by.append(parent.name)
    for s_id in plan.metadata_updated:
        snapshot = snapshots[s_id]
        if snapshot.is_model and s_id.name not in previews:
            found = preview(s_id.name)
            _categorised(found, snapshot)
            found.diff = diff.text_diff(s_id.name)
    for s_id, info in diff.removed_snapshots.items():
        if info.is_model:
            preview(s_id.name).change = "removed"
    for missing in plan.missing_intervals:
        preview(missing.snapshot_id.name).intervals = _intervals(missing.intervals)
    for s_id in plan.restatements:
        restated = snapshots.get(s_id)
        if restated is not None and restated.is_model:
            preview(s_id.name).restated = True
    for name, details in refused.items():
        preview(name).refused = details
    for found in previews.values():
        found.modified_by = sorted(set(found.modified_by))
    return previews


def _categorised(found: ModelPreview, snapshot: Any) -> None:
    category = snapshot.change_category
    found.category = category.name if category is not None else None
    found.forward_only = bool(snapshot.is_forward_only)
    direct = category in (SnapshotChangeCategory.BREAKING, SnapshotChangeCategory.NON_BREAKING)
    if found.forward_only and direct:
        found.change = "forward-only"
    else:
        found.change = _CHANGES.get(category, "unchanged") if category is not None else "unchanged"


def _intervals(intervals: Collection[tuple[Any, Any]]) -> list[tuple[int, int]]:
    return sorted((int(start), int(end)) for start, end in intervals)


def plain_text(message: str) -> str:
    """SQLMesh's message without the terminal colours its errors may carry."""
    return ANSI.sub("", message).strip()
