"""Each model's SQLMesh cron drives its automation: one sensor, one run per tick for due models.

Or, with the builder's `automation` option, Dagster's declarative automation instead
(`conditions.py`, ADR 17); this sensor is then defined stopped.

SQLMesh's own scheduler (`sqlmesh run`) wakes up, finds the models whose cron has ticked since it
last looked, and evaluates their missing intervals in one go. The sensor here does the same in
Dagster: each evaluation requests one run holding exactly the models whose cron ticked since the
previous evaluation, so a tick is one Dagster run and one SQLMesh execution. A run covering
time-partitioned models targets their latest complete partition; SQLMesh also fills any earlier
interval still missing (see docs/adr/0005-partitions-and-intervals.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
from croniter import croniter

from mxm_dagster.asset_graph.metadata import RANGE_END_TAG, RANGE_START_TAG
from mxm_dagster.asset_graph.partitions import dagster_cron
from mxm_dagster.records.specs import ModelSpec

SENSOR_NAME = "sqlmesh_cron"  # the sensor of the only (or an unnamed) project


def sensor_name_for(resource_key: str) -> str:
    """`sqlmesh_cron` for the unnamed project's resource `sqlmesh`, `sqlmesh_<name>_cron` for a
    named one: one sensor per project, never two of the same name in a code location."""
    return f"{resource_key}_cron"


TICK_TAG = "mxm/cron_tick"


def cron_ticked(cron: str, timezone: str | None, since: datetime, until: datetime) -> bool:
    """Whether `cron` has a tick in (since, until]."""
    next_tick = croniter(dagster_cron(cron), since.astimezone(ZoneInfo(timezone or "UTC")))
    return next_tick.get_next(datetime) <= until


def due_models(models: Iterable[ModelSpec], since: datetime, until: datetime) -> list[ModelSpec]:
    """The models whose SQLMesh cron ticked in (since, until]: what a tick materializes."""
    return [
        m for m in models if m.is_model and m.cron and cron_ticked(m.cron, m.cron_tz, since, until)
    ]


PartitionsDefs = Mapping[str, dg.PartitionsDefinition | None]


def run_requests(
    due: list[ModelSpec],
    keys: Mapping[str, dg.AssetKey],
    now: datetime,
    partitions_of: PartitionsDefs | None = None,
) -> list[dg.RunRequest]:
    """One run for the due models; their time-partitioned ones target the latest partition.

    `partitions_of`: model name -> the partitions of its asset (what the translator gave);
    models missing from it are unpartitioned, as they are by default.

    Only models whose partitions differ (hourly next to daily) are split into further runs, as one
    Dagster run covers one partition range.
    """
    groups: dict[str, list[ModelSpec]] = {}
    partitions_defs: dict[str, dg.TimeWindowPartitionsDefinition] = {}
    for model in due:
        partitions_def = (partitions_of or {}).get(model.name)
        if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
            partitions_def = None
        group = "" if partitions_def is None else str(partitions_def)
        if partitions_def is not None:
            partitions_defs[group] = partitions_def
        groups.setdefault(group, []).append(model)
    if "" in groups and partitions_defs:  # unpartitioned models join the first partitioned run
        groups[next(iter(partitions_defs))].extend(groups.pop(""))
    requests: list[dg.RunRequest] = []
    for group, members in groups.items():
        tags = {TICK_TAG: now.isoformat()}
        if group:
            with dg.partition_loading_context(effective_dt=now):
                last = partitions_defs[group].get_last_partition_key()
            if last is None:
                continue
            tags.update({RANGE_START_TAG: last, RANGE_END_TAG: last})
        requests.append(
            dg.RunRequest(asset_selection=sorted(keys[m.name] for m in members), tags=tags)
        )
    return requests


def cron_sensor(
    models: list[ModelSpec],
    keys: Mapping[str, dg.AssetKey],
    partitions_defs: PartitionsDefs | None = None,
    name: str = SENSOR_NAME,
    running: bool = True,
) -> dg.SensorDefinition:
    """Running from the start (`dagster dev` runs it with no set-up), unless the project uses
    declarative automation instead (`running=False`: it is defined, stopped).

    The cursor is the time of the previous evaluation; the first evaluation only sets it, so
    turning automation on never replays old ticks. `asset_selection` rather than `target`: its
    runs go to the implicit asset job the UI uses too, where `target` would define a second job
    over the same assets that every code server load builds and snapshots (~1 s at 1000 models).
    """
    scheduled = [m for m in models if m.is_model and m.cron and m.name in keys]

    @dg.sensor(
        name=name,
        asset_selection=dg.AssetSelection.assets(*sorted({keys[m.name] for m in scheduled})),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING
        if running
        else dg.DefaultSensorStatus.STOPPED,
        description="Materializes the SQLMesh models whose cron ticked since the last evaluation, "
        "in one run (one SQLMesh execution) per tick",
    )
    def sqlmesh_cron(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = datetime.now(tz=UTC)
        if not context.cursor:
            return dg.SensorResult(cursor=json.dumps({"evaluated_at": now.isoformat()}))
        since = datetime.fromisoformat(json.loads(context.cursor)["evaluated_at"])
        due = due_models(scheduled, since, now)
        if due:
            context.log.info(f"Due: {', '.join(m.name for m in due)}")
        return dg.SensorResult(
            run_requests=run_requests(due, keys, now, partitions_defs),
            cursor=json.dumps({"evaluated_at": now.isoformat()}),
        )

    return sqlmesh_cron
