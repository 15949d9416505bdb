"""A model's data version, from what SQLMesh's state records about the data it serves (ADR 15).

The served data of a model in an environment is one physical table (the snapshot's version, or
its dev version when the environment does not deploy it as is) holding the intervals SQLMesh
recorded for that table. SQLMesh 0.236 stamps every interval record with `last_altered_ts` when
the scheduler writes it; compacting records keeps the stamp. So (table, intervals, last altered)
changes exactly when the served data does: a new interval, an interval recomputed by a
restatement (same intervals, later stamp), a new snapshot version promoted, intervals removed;
and not when SQLMesh finds the model up to date or only its metadata changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Any

from sqlmesh import Context
from sqlmesh.core.constants import PROD
from sqlmesh.core.snapshot import DeployabilityIndex, SnapshotId

from mxm_dagster.child.sqlmesh_api.state import table_info
from mxm_dagster.records.results import TableInfo
from mxm_dagster.records.served import ServedModel


def snapshot_data_version(snapshot: Any, representative: bool = True) -> str:
    """The data version of what `snapshot` serves: its table, intervals and last alteration.

    `representative` False: the environment reads the snapshot's development table (a
    forward-only change in a development environment), whose intervals are its dev intervals."""
    if representative:
        table, intervals, altered = snapshot.version, snapshot.intervals, snapshot.last_altered_ts
    else:
        table = snapshot.dev_version
        intervals, altered = snapshot.dev_intervals, snapshot.dev_last_altered_ts
    canonical = json.dumps(
        [snapshot.name, table, [[int(a), int(b)] for a, b in intervals], altered or 0]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def data_versions(context: Context, environment: str, models: Collection[str]) -> dict[str, str]:
    """Per model of `models` promoted in the environment: its data version, read from state."""
    return {
        snapshot.name: snapshot_data_version(snapshot, representative)
        for snapshot, representative in _served_snapshots(context, environment, set(models))
    }


def served_models(context: Context, environment: str) -> list[ServedModel]:
    """Every model the environment serves: where its data is, its recorded intervals and its
    data version, from state alone (no model file is read)."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return []
    served = []
    for snapshot, representative in _served_snapshots(context, environment, None):
        table = table_info(snapshot, env.naming_info, context.default_dialect, representative)
        intervals = snapshot.intervals if representative else snapshot.dev_intervals
        served.append(
            ServedModel(
                model=snapshot.name,
                data_version=snapshot_data_version(snapshot, representative),
                intervals=[(int(a), int(b)) for a, b in intervals],
                **table,
            )
        )
    return served


def _served_snapshots(
    context: Context, environment: str, models: set[str] | None
) -> list[tuple[Any, bool]]:
    """The environment's model snapshots (of `models`, or all), each with whether the
    environment reads its own table (deployable as is) rather than its dev table.

    Read after SQLMesh finished writing: the snapshot cache is dropped first, as a restatement
    may have removed intervals of snapshots that share the version (the cache keeps those)."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return []
    clear = getattr(context.state_reader, "clear_cache", None)
    if clear is not None:
        clear()
    ids = {info.snapshot_id for info in env.snapshots if models is None or info.name in models}
    snapshots = context.state_reader.get_snapshots(ids)
    deployability = (
        DeployabilityIndex.all_deployable()
        if environment == PROD
        else DeployabilityIndex.create(snapshots)
    )
    return [
        (snapshot, deployability.is_representative(snapshot))
        for snapshot in snapshots.values()
        if snapshot.is_model
    ]


def written_data_version(context: Context, model: str, table: TableInfo) -> str | None:
    """The data version of a model SQLMesh just finished writing (its intervals are recorded by
    then), for the snapshot `table` names; None when state does not know it. Called on
    SQLMesh's worker thread: never raises."""
    try:
        fingerprint = table.get("fingerprint")
        if not fingerprint:
            return None
        snapshot_id = SnapshotId(name=model, identifier=fingerprint)
        snapshot = context.state_reader.get_snapshots([snapshot_id]).get(snapshot_id)
        if snapshot is None:
            return None
        dev_table = snapshot.table_name(False)  # what a forward-only change in dev writes
        writes_dev = table.get("physical_table") == dev_table != snapshot.table_name()
        representative = not writes_dev
        return snapshot_data_version(snapshot, representative)
    except Exception:
        return None
