"""Data version tags for materializations logged as events rather than step outputs (ADR 15).

A step's `MaterializeResult(data_version=...)` gets Dagster's provenance tags from Dagster: its
code version and each upstream asset's data version as the step saw it, which the UI's staleness
compares with the upstream's current data version. A record logged with `log_event` (a model
beyond the run's selection, a partition SQLMesh filled outside the step's range) or reported by a
sensor gets none, so it carries the same tags, built here the way Dagster builds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    NULL_EVENT_POINTER,
    extract_data_version_from_entry,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus

if TYPE_CHECKING:  # the observing sensor imports this module: no run view there
    from mxm_dagster.run.view import RunView

DEFAULT_CODE_VERSION = "sqlmesh"  # what a record says when the asset declares no code version


def latest_data_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The data version of the asset's latest materialization in the instance, if it has one."""
    record = instance.get_latest_data_version_record(key, is_source=False)
    if record is None:
        return None
    version = extract_data_version_from_entry(record.event_log_entry)
    return version.value if version is not None else None


def provenance_tags(
    instance: dg.DagsterInstance,
    data_version: str,
    code_version: str | None,
    parents: list[dg.AssetKey],
    reported_now: Mapping[dg.AssetKey, str],
) -> dict[str, str]:
    """The tags Dagster gives a materialization with a user-provided data version.

    `reported_now`: data versions of assets recorded together with this one (a parent whose
    record is not in the instance yet); every other parent's comes from the instance."""
    tags = {
        DATA_VERSION_TAG: data_version,
        DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
        CODE_VERSION_TAG: code_version or DEFAULT_CODE_VERSION,
    }
    for parent in parents:
        if parent in reported_now:
            version, pointer = reported_now[parent], NULL_EVENT_POINTER
        else:
            record = instance.get_latest_data_version_record(parent)
            found = extract_data_version_from_entry(record.event_log_entry) if record else None
            version = found.value if found is not None else DEFAULT_DATA_VERSION.value
            pointer = str(record.storage_id) if record else NULL_EVENT_POINTER
        tags[get_input_data_version_tag(parent)] = version
        tags[get_input_event_pointer_tag(parent)] = pointer
    return tags


def event_tags(
    instance: dg.DagsterInstance,
    run: RunView,
    key: dg.AssetKey,
    outcome: ModelOutcome,
    results: ExecutionResults,
) -> dict[str, str]:
    """The tags of a record of `outcome` logged from a step (none without a data version):
    the asset's code version and upstream keys from the definitions being run (`RunView.graph`,
    also for a subset job: the graph it was cut from); a parent SQLMesh wrote in the same
    execution at the data version the results give it, as its own record may not be stored yet.
    """
    if outcome.data_version is None:
        return {}
    reported_now = {
        parent: o.data_version
        for o in results.models.values()
        if o.status is ModelStatus.EVALUATED
        and o.data_version
        and (parent := run.keys_by_model.get(o.model))
    }
    if run.graph.has(key):
        node = run.graph.get(key)
        code_version, parents = node.code_version, sorted(node.parent_keys)
    else:
        code_version, parents = None, []
    return provenance_tags(instance, outcome.data_version, code_version, parents, reported_now)
