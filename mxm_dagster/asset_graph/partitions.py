"""Dagster time partitions <-> SQLMesh intervals: pure mapping, no run context.

Partitions are opt-in (ADR 5): `MXM_SQLMESH_PARTITIONS=on` or `build_definitions(partitions=True)`
turns them on for a project, `SQLMeshTranslator.get_partitions_def` per model.

SQLMesh cuts an INCREMENTAL_BY_TIME_RANGE model's time into intervals of its interval unit,
aligned on UTC boundaries from the model's start; its cron only says when intervals become due. A
Dagster partition is therefore one SQLMesh interval: the window follows the interval unit (never the
cron, which may tick at 06:00 for midnight-aligned daily intervals), in UTC, from the model start.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from croniter import croniter

from mxm_dagster.common.switches import switch_from_env
from mxm_dagster.common.times import from_ms
from mxm_dagster.records.specs import ModelSpec

TIME_PARTITIONED_KINDS = {"INCREMENTAL_BY_TIME_RANGE"}
PARTITIONS_ENV = "MXM_SQLMESH_PARTITIONS"

# SQLMesh interval unit -> (Dagster cron of the window boundaries, partition key format)
_WINDOWS: dict[str, tuple[str, str]] = {
    "year": ("0 0 1 1 *", "%Y-%m-%d"),
    "month": ("0 0 1 * *", "%Y-%m-%d"),
    "day": ("0 0 * * *", "%Y-%m-%d"),
    "hour": ("0 * * * *", "%Y-%m-%d-%H:%M"),
    "half_hour": ("*/30 * * * *", "%Y-%m-%d-%H:%M"),
    "quarter_hour": ("*/15 * * * *", "%Y-%m-%d-%H:%M"),
    "five_minute": ("*/5 * * * *", "%Y-%m-%d-%H:%M"),
}

# SQLMesh accepts croniter's aliases; Dagster's automation wants five fields.
_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def dagster_cron(cron: str) -> str:
    """A SQLMesh cron as Dagster's cron parser expects it (aliases spelled out)."""
    return _CRON_ALIASES.get(cron.strip().lower(), cron.strip())


def partitions_from_env() -> bool:
    """MXM_SQLMESH_PARTITIONS: `on` or `off` (the default when unset)."""
    return switch_from_env(PARTITIONS_ENV)


def is_due(
    cron: str, cron_tz: str | None, interval_end: datetime, execution_time: datetime
) -> bool:
    """Whether SQLMesh counts an interval ending at `interval_end` as due at `execution_time`:
    a tick of the model's cron at or after the interval's end has passed (a daily interval with
    cron `0 6 * * *` is due at 06:00 the next day)."""
    local_time = (execution_time + timedelta(seconds=1)).astimezone(ZoneInfo(cron_tz or "UTC"))
    ticks = croniter(dagster_cron(cron), local_time)
    return ticks.get_prev(datetime) >= interval_end


def is_time_partitioned(model: ModelSpec) -> bool:
    return (
        model.kind in TIME_PARTITIONED_KINDS
        and model.interval_unit in _WINDOWS
        and model.start_ms is not None
    )


def partitions_def_from_model(model: ModelSpec) -> dg.TimeWindowPartitionsDefinition | None:
    """One partition per SQLMesh interval of the model; None for models without time intervals.

    The last partition is the last complete interval, as SQLMesh only fills complete intervals.
    """
    if not is_time_partitioned(model):
        return None
    cron, fmt = _WINDOWS[str(model.interval_unit)]
    start = from_ms(int(model.start_ms or 0))
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=start.strftime(fmt), fmt=fmt, timezone="UTC"
    )


def window_for_keys(
    partitions_def: dg.PartitionsDefinition, start_key: str, end_key: str
) -> tuple[datetime, datetime]:
    """The [start, end) time span from the first partition's start to the last one's end."""
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
    first = partitions_def.time_window_for_partition_key(start_key)
    last = partitions_def.time_window_for_partition_key(end_key)
    return first.start, last.end


def keys_for_intervals(
    partitions_def: dg.PartitionsDefinition, intervals: Iterable[tuple[int, int]]
) -> list[str]:
    """Partition keys whose whole window lies inside the given [start, end) epoch-ms intervals."""
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
    keys: list[str] = []
    for start_ms, end_ms in intervals:
        window = dg.TimeWindow(
            from_ms(start_ms),
            from_ms(end_ms),
        )
        # Dagster's lookup returns every window that starts inside: keep the ones that end too
        keys.extend(
            key
            for key in partitions_def.get_partition_keys_in_time_window(window)
            if partitions_def.time_window_for_partition_key(key).end <= window.end
        )
    return sorted(set(keys))


def full_range(models: Iterable[ModelSpec]) -> str | None:
    """`first...last`: every partition of the project's time-partitionable models, for the CLI's
    `--partition-range` when partitions are on (Dagster's CLI refuses partitioned assets without
    one). Dagster runs one partitions definition per run, so models whose intervals differ (an
    hourly and a daily model, or daily ones with different starts) have no common range: that is
    a ValueError naming the groups."""
    groups: dict[dg.TimeWindowPartitionsDefinition, list[str]] = {}
    for model in models:
        partitions_def = partitions_def_from_model(model)
        if partitions_def is not None:
            groups.setdefault(partitions_def, []).append(model.name)
    if not groups:
        return None
    if len(groups) > 1:
        described = "; ".join(
            f"{d.cron_schedule} from {d.start.isoformat()}: {', '.join(sorted(names))}"
            for d, names in groups.items()
        )
        raise ValueError(
            "The time-partitioned models have different partitions, and one Dagster run covers "
            f"one partitions definition: {described}. Materialize each group with its own "
            "--partition-range, or leave partitions off (MXM_SQLMESH_PARTITIONS=off)."
        )
    (partitions_def,) = groups
    first, last = partitions_def.get_first_partition_key(), partitions_def.get_last_partition_key()
    return f"{first}...{last}" if first and last else None


if __name__ == "__main__":  # `python -m mxm_dagster.asset_graph.partitions`: the range for the CLI
    import sys

    from mxm_dagster.project.sqlmesh_project import SQLMeshProject

    try:
        print(full_range(SQLMeshProject.from_env().load_spec().models) or "")
    except ValueError as exc:
        sys.exit(f"mxm_dagster.asset_graph.partitions: {exc}")
