"""Which SQLMesh models a Dagster run means.

Inside one asset step `context.selected_asset_keys` is only that step's key; the run's selection is
the job's assets, narrowed by `run.asset_selection` when set and by `run.step_keys_to_execute` when
set ("re-execute from failure" sets only the latter, to the failed and skipped steps).
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from mxm_dagster.assets import partitions
from mxm_dagster.assets.translator import MODEL_KIND_METADATA_KEY, MODEL_NAME_METADATA_KEY


def asset_keys_for_run(context: dg.AssetExecutionContext) -> set[dg.AssetKey]:
    run = context.run
    layer = context.job_def.asset_layer
    keys = set(run.asset_selection) if run.asset_selection else set(layer.selected_asset_keys)
    if run.step_keys_to_execute:
        steps = set(run.step_keys_to_execute)
        keys = {k for k in keys if _step_key(layer, k) in steps}
    return keys


def _step_key(layer: dg.AssetLayer, key: dg.AssetKey) -> str | None:  # type: ignore[name-defined]
    try:
        return str(layer.get_op_output_handle(key).node_handle)
    except Exception:  # a key with no op in this job (an external source) has no step
        return None


def asset_graph(context: dg.AssetExecutionContext):  # type: ignore[no-untyped-def]
    """The code location's whole asset graph; a subset job's own graph lacks unselected assets."""
    try:
        return context.repository_def.asset_graph
    except Exception:  # `materialize()` runs a job outside any repository
        return context.job_def.asset_layer.asset_graph


def asset_keys_by_model_in_graph(context: dg.AssetExecutionContext) -> dict[str, dg.AssetKey]:
    """SQLMesh model name -> asset key for every SQLMesh model in the run's asset graph."""
    graph = asset_graph(context)
    mapping: dict[str, dg.AssetKey] = {}
    for key in graph.get_all_asset_keys():
        metadata = graph.get(key).metadata
        model = metadata.get(MODEL_NAME_METADATA_KEY)
        if model is not None and metadata.get(MODEL_KIND_METADATA_KEY) != "EXTERNAL":
            mapping[getattr(model, "value", model)] = key
    return mapping


def models_for_run(context: dg.AssetExecutionContext) -> set[str]:
    keys = asset_keys_for_run(context)
    return {model for model, key in asset_keys_by_model_in_graph(context).items() if key in keys}


def _materialized_in_run(context: dg.AssetExecutionContext) -> set[dg.AssetKey]:
    records = context.instance.all_logs(
        context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return {r.dagster_event.asset_key for r in records if r.dagster_event is not None}


def deferred_models(
    context: dg.AssetExecutionContext, models: set[str], asset_keys_by_model: dict[str, dg.AssetKey]
) -> set[str]:
    """Models that must wait for a non-SQLMesh asset of this run that has not materialized yet.

    A Python asset that loads an external table may run after the first SQLMesh step of the run;
    models downstream of it are left for a later execution in the step that needs them.
    """
    sqlmesh_keys = set(asset_keys_by_model.values())
    foreign = {k for k in asset_keys_for_run(context) if k not in sqlmesh_keys}
    if not foreign:
        return set()
    pending = foreign - _materialized_in_run(context)
    if not pending:
        return set()
    graph = asset_graph(context)
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


RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def run_time_window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime] | None:
    """The [start, end) span of a partitioned run, whichever step asks; None when unpartitioned.

    Read from the run's tags and a time-partitioned asset of the run, because the asking step may
    be an unpartitioned model of a partitioned run, which has no time window of its own.
    """
    tags = context.run.tags
    start_key = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    end_key = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    if not start_key or not end_key:
        return None
    graph = asset_graph(context)
    for key in sorted(asset_keys_for_run(context), key=lambda k: k.to_user_string()):
        partitions_def = graph.get(key).partitions_def if graph.has(key) else None
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
            return partitions.window_for_keys(partitions_def, start_key, end_key)
    return None


def downstream_in_run(context: dg.AssetExecutionContext, key: dg.AssetKey) -> list[dg.AssetKey]:
    """The run's assets downstream of `key` through assets of the run: the steps Dagster skips
    ("due to skipped dependencies") when the step of `key` yields no output."""
    graph = asset_graph(context)
    in_run = asset_keys_for_run(context)
    found: set[dg.AssetKey] = set()
    frontier = [key]
    while frontier:
        current = frontier.pop()
        for child in graph.get(current).child_keys if graph.has(current) else ():
            if child in in_run and child not in found:
                found.add(child)
                frontier.append(child)
    return sorted(found, key=lambda k: k.to_user_string())


def step_partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The partitions the step's output would record: its range, none in an unpartitioned run."""
    if context.has_partition_key_range or context.has_partition_key:
        return list(context.partition_keys)
    return []


def partitions_def_in_graph(
    context: dg.AssetExecutionContext, key: dg.AssetKey
) -> dg.TimeWindowPartitionsDefinition | None:
    """The partitions of asset `key` as the run's asset graph has them (a translator may have
    changed what `partitions_def_from_model` would build); None if not time-partitioned."""
    graph = asset_graph(context)
    partitions_def = graph.get(key).partitions_def if graph.has(key) else None
    return partitions_def if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) else None
