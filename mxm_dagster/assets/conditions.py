"""Declarative automation of SQLMesh models: a condition per model from its cron (and, as an
option, eager on upstream changes) that Dagster's automation daemon evaluates (ADR 17).

The daemon puts every model a tick requests into one run when they share a partitions
definition and partition (always, with partitions off): one run, one SQLMesh execution. With
time partitions on, each partitions definition and partition key is a run of its own, as the
cron sensor splits them too (ADR 5).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

import dagster as dg

from mxm_dagster.asset_graph.partitions import dagster_cron
from mxm_dagster.records.specs import ModelSpec

#: How a project's models are automated: the cron sensor (default); Dagster's declarative
#: automation on each model's cron; or on its cron and whenever an upstream asset updates.
Automation = Literal["sensor", "cron", "cron_or_eager"]
AUTOMATIONS: tuple[Automation, ...] = ("sensor", "cron", "cron_or_eager")
AUTOMATION_ENV = "MXM_SQLMESH_AUTOMATION"


def automation_from_env() -> Automation:
    """MXM_SQLMESH_AUTOMATION: `sensor` (the default when unset), `cron` or `cron_or_eager`."""
    raw = os.environ.get(AUTOMATION_ENV, "").strip().lower() or "sensor"
    for automation in AUTOMATIONS:
        if raw == automation:
            return automation
    raise ValueError(
        f"{AUTOMATION_ENV} must be one of {', '.join(AUTOMATIONS)}, "
        f"not {os.environ[AUTOMATION_ENV]!r}"
    )


def automation_sensor_name_for(resource_key: str) -> str:
    """`sqlmesh_automation` for the resource `sqlmesh`, `sqlmesh_<name>_automation` else."""
    return f"{resource_key}_automation"


def on_sqlmesh_cron(cron: str, timezone: str = "UTC") -> dg.AutomationCondition:
    """True once after each tick of `cron` (a Dagster cron), until a run requests or
    materializes the model; never while it is in progress.

    Not Dagster's `on_cron`: that also waits until every upstream asset updated since the tick,
    and external tables SQLMesh reads never do in Dagster. SQLMesh needs no such wait: a run
    fills the due intervals of the selected models' upstream models in the same execution.
    """
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.cron_tick_passed(cron, timezone).since_last_handled()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"SQLMesh cron {cron} ({timezone})")


def on_upstream_change() -> dg.AutomationCondition:
    """Dagster's `eager` without its wait for missing upstream assets: true when the model is
    newly missing or an upstream asset updated since it was last requested, never while it or
    an upstream asset is in progress. External tables SQLMesh reads are never materialized in
    Dagster, so `eager` would never fire for a model reading one."""
    return (
        dg.AutomationCondition.in_latest_time_window()
        & (
            dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()
        ).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("upstream changed or newly missing")


def sqlmesh_automation_condition(
    model: ModelSpec, eager: bool = False
) -> dg.AutomationCondition | None:
    """The condition the builder's `automation` option gives a model: its SQLMesh cron, or
    (`eager`) its cron or an upstream change. None for a model without a cron and not eager."""
    if not model.is_model:
        return None
    cron = on_sqlmesh_cron(dagster_cron(model.cron), model.cron_tz or "UTC") if model.cron else None
    if not eager:
        return cron
    return on_upstream_change() if cron is None else cron | on_upstream_change()


#: Seconds between two evaluations of a project's conditions (Dagster's default for its own
#: automation condition sensors).
AUTOMATION_INTERVAL_SECONDS = 30


def automation_sensor(
    keys: Iterable[dg.AssetKey], name: str
) -> dg.AutomationConditionSensorDefinition:
    """The project's automation condition sensor, running by default: the daemon evaluates its
    models' conditions and requests each tick's models together (one run when they share a
    partitions definition and partition, see ADR 17)."""
    return dg.AutomationConditionSensorDefinition(
        name=name,
        target=dg.AssetSelection.assets(*sorted(set(keys))),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        description="Evaluates the automation conditions of the SQLMesh models; each tick's "
        "requested models run together, in one SQLMesh execution per run",
    )
