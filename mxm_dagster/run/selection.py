"""Which SQLMesh models a Dagster run means, and where they sit in the asset graph.

Inside one asset step `context.selected_asset_keys` is only that step's key; the run's selection is
the job's assets, narrowed by `run.asset_selection` when set and by `run.step_keys_to_execute` when
set ("re-execute from failure" sets only the latter, to the failed and skipped steps).

The arithmetic is in pure functions ending in `_of`: they take the code location's asset graph
(`Definitions.resolve_asset_graph()` in a test), the run's asset keys and tags, and no Dagster
context, so they run without a Dagster run. The few functions taking a context read those from
it; `run.view` calls them once per run (and project) and every step reads the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import dagster as dg

from mxm_dagster.asset_graph import partitions
from mxm_dagster.asset_graph.metadata import (
    MODEL_KIND_METADATA_KEY,
    MODEL_NAME_METADATA_KEY,
    PARTITION_TAG,
    PROJECT_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
)

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

# ---------------------------------------------------------------------- pure: graph, keys, tags


def project_of(graph: AssetGraph, key: dg.AssetKey) -> str | None:
    """The SQLMesh project folder whose model asset `key` is (its step's tag), if any."""
    assets_def = graph.get(key).assets_def if graph.has(key) else None
    if assets_def is None or not assets_def.is_executable:
        return None
    return assets_def.node_def.tags.get(PROJECT_TAG)


def sqlmesh_model_keys_of(graph: AssetGraph) -> set[dg.AssetKey]:
    """The asset keys of every SQLMesh model of `graph`, whichever project it belongs to."""
    keys: set[dg.AssetKey] = set()
    for key in graph.get_all_asset_keys():
        metadata = graph.get(key).metadata
        if MODEL_NAME_METADATA_KEY in metadata and (
            metadata.get(MODEL_KIND_METADATA_KEY) != "EXTERNAL"
        ):
            keys.add(key)
    return keys


def asset_keys_by_model_of(graph: AssetGraph, project: str | None = None) -> dict[str, dg.AssetKey]:
    """SQLMesh model name -> asset key for every SQLMesh model (not external source) of `graph`;
    of `project`'s models only when given, as two projects may both name a model `a.b`."""
    mapping: dict[str, dg.AssetKey] = {}
    for key in sqlmesh_model_keys_of(graph):
        if project is not None and project_of(graph, key) != project:
            continue
        model = graph.get(key).metadata[MODEL_NAME_METADATA_KEY]
        mapping[getattr(model, "value", model)] = key
    return mapping


def models_of(
    graph: AssetGraph, run_keys: set[dg.AssetKey], project: str | None = None
) -> set[str]:
    """The SQLMesh models among the run's assets (of `project` only, when given)."""
    return {
        model for model, key in asset_keys_by_model_of(graph, project).items() if key in run_keys
    }


def checks_only_models_of(
    graph: AssetGraph, run_keys: set[dg.AssetKey], check_keys: set[dg.AssetCheckKey]
) -> set[str]:
    """The SQLMesh models whose checks the run selected without the model's asset: executing
    checks alone (the UI's "Execute" on a Checks tab) runs their audits on the current data."""
    checked = {key.asset_key for key in check_keys}
    return {
        model
        for model, key in asset_keys_by_model_of(graph).items()
        if key in checked and key not in run_keys
    }


def partitions_def_of(
    graph: AssetGraph, key: dg.AssetKey
) -> dg.TimeWindowPartitionsDefinition | None:
    """The partitions of asset `key` as the asset graph has them (a translator may have changed
    what `partitions_def_from_model` would build); None if not time-partitioned."""
    partitions_def = graph.get(key).partitions_def if graph.has(key) else None
    return partitions_def if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) else None


def deferred_models_of(
    graph: AssetGraph,
    models: Iterable[str],
    asset_keys_by_model: Mapping[str, dg.AssetKey],
    pending: set[dg.AssetKey],
) -> set[str]:
    """The models with an asset of `pending` (not materialized yet in the run) upstream."""
    deferred: set[str] = set()
    for model in models:
        frontier, seen = [asset_keys_by_model[model]], set()
        while frontier:
            key = frontier.pop()
            if key in pending:
                deferred.add(model)
                break
            for parent in graph.get(key).parent_keys if graph.has(key) else ():
                if parent not in seen:
                    seen.add(parent)
                    frontier.append(parent)
    return deferred


def downstream_of(
    graph: AssetGraph, key: dg.AssetKey, run_keys: set[dg.AssetKey]
) -> list[dg.AssetKey]:
    """The run's assets downstream of `key` through assets of the run, sorted."""
    found: set[dg.AssetKey] = set()
    frontier = [key]
    while frontier:
        current = frontier.pop()
        for child in graph.get(current).child_keys if graph.has(current) else ():
            if child in run_keys and child not in found:
                found.add(child)
                frontier.append(child)
    return sorted(found, key=lambda k: k.to_user_string())


def _partition_range_of(tags: Mapping[str, str]) -> tuple[str, str] | None:
    start_key = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    end_key = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    return (start_key, end_key) if start_key and end_key else None


def time_window_of(
    graph: AssetGraph, run_keys: set[dg.AssetKey], tags: Mapping[str, str]
) -> tuple[datetime, datetime] | None:
    """The [start, end) span of the run's partition (range) in the first time-partitioned asset
    of the run, by key; None when the run is not partitioned."""
    span = _partition_range_of(tags)
    if span is None:
        return None
    for key in sorted(run_keys, key=lambda k: k.to_user_string()):
        if (partitions_def := partitions_def_of(graph, key)) is not None:
            return partitions.window_for_keys(partitions_def, *span)
    return None


def partition_keys_of(
    partitions_def: dg.TimeWindowPartitionsDefinition, tags: Mapping[str, str]
) -> list[str]:
    """The partitions of `partitions_def` in the run's partition (range); none if unpartitioned.

    As Dagster reads a step's range: a single partition's tag first, else the range's tags.
    """
    if key := tags.get(PARTITION_TAG):
        return list(partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(key, key)))
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not start or not end:
        return []
    return list(partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(start, end)))


# ---------------------------------------------------------------------- from a step's context


def asset_keys_for_run(context: dg.AssetExecutionContext) -> set[dg.AssetKey]:
    run = context.run
    layer = context.job_def.asset_layer
    keys = set(run.asset_selection) if run.asset_selection else set(layer.selected_asset_keys)
    if run.step_keys_to_execute:
        steps = set(run.step_keys_to_execute)
        keys = {k for k in keys if step_key(layer, k) in steps}
    return keys


def check_keys_for_run(context: dg.AssetExecutionContext) -> set[dg.AssetCheckKey]:
    """The run's asset checks, narrowed as its assets are (`asset_keys_for_run`)."""
    run = context.run
    layer = context.job_def.asset_layer
    if run.asset_check_selection is not None:
        keys = set(run.asset_check_selection)
    else:
        keys = {key for data in layer.data for key in data.assets_def.check_keys}
    if run.step_keys_to_execute:
        steps = set(run.step_keys_to_execute)
        keys = {k for k in keys if step_key(layer, k) in steps}
    return keys


def step_key(layer: dg.AssetLayer, key: dg.AssetKey | dg.AssetCheckKey) -> str | None:  # type: ignore[name-defined]
    """The step that materializes `key` (or runs the check `key`) in the job of `layer`; None
    for a key without one."""
    try:
        return str(layer.get_op_output_handle(key).node_handle)
    except Exception:  # a key with no op in this job (an external source) has no step
        return None


def asset_graph(context: dg.AssetExecutionContext) -> AssetGraph:
    """The whole asset graph of the definitions being run: the one source of the model -> key
    map beyond the run's selection (a subset job's own graph lacks the models SQLMesh may
    evaluate below or above it).

    The repository's graph; else the graph the job was cut from (Dagster's `JobScopedAssetGraph`
    keeps it as `source_asset_graph`) when there is no repository (`materialize()`,
    `execute_in_process`), or when the repository has no assets: `dg.reconstructable(job_fn)`
    (as `execute_job` needs) wraps the job in a repository whose asset graph is empty.
    """
    try:
        graph = context.repository_def.asset_graph
    except Exception:  # `materialize()` runs a job outside any repository
        graph = None
    if graph is None or not graph.get_all_asset_keys():  # no step asset is sure: checks alone
        graph = context.job_def.asset_layer.asset_graph
    return graph.source_asset_graph  # an AssetGraph that was not cut from another is its own


def step_project(context: dg.AssetExecutionContext) -> str | None:
    """The SQLMesh project folder the step's model belongs to, as its assets were built."""
    return context.op_def.tags.get(PROJECT_TAG)


def materialized_in_run(context: dg.AssetExecutionContext) -> set[dg.AssetKey]:
    """The assets materialized so far in the run (read from the instance: it changes)."""
    records = context.instance.all_logs(
        context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return {r.dagster_event.asset_key for r in records if r.dagster_event is not None}
