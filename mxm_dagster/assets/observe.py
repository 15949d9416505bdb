"""The observing sensor: SQLMesh runs made outside Dagster, reported as runless materializations.

Teams keep running `sqlmesh plan` and `sqlmesh run` themselves. Each tick a SQLMesh child reads
what the environment serves (`mxm_dagster.child.observe`), and every model whose data version
(ADR 15) differs from the one of its latest materialization in Dagster is reported once, with
the provenance fields of a run's materialization and the same data version, so the asset graph
and its staleness follow SQLMesh whoever ran it.

Never twice: the cursor keeps, per model, the data version the sensor last reported, and a
change a Dagster run already recorded has that run's data version in the instance. Off by
default (a tick costs a SQLMesh child); `MXM_SQLMESH_OBSERVE=on`, the component's `observe:
true` or `sqlmesh_definitions(..., observe=True)` start it running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from mxm_dagster.asset_graph import partitions
from mxm_dagster.asset_graph.metadata import MODEL_NAME_METADATA_KEY
from mxm_dagster.common.interpreter import child_command, child_env
from mxm_dagster.common.switches import switch_from_env
from mxm_dagster.common.times import to_ms
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.results import ExecutionResults, ModelOutcome, ModelStatus
from mxm_dagster.records.served import SERVED_REPLY_PREFIX, ServedModel, ServedState
from mxm_dagster.run import events
from mxm_dagster.run.data_versions import latest_data_version, provenance_tags

OBSERVE_ENV = "MXM_SQLMESH_OBSERVE"
OBSERVE_CHILD_MODULE = "mxm_dagster.child.observe"
COMMAND = "outside_dagster"  # `sqlmesh/command` of what the sensor reports
DESCRIPTION = "Built by SQLMesh outside Dagster (sqlmesh plan / sqlmesh run), seen in its state"
#: Runs whose SQLMesh changes are theirs to record: the sensor waits for them to end
IN_PROGRESS = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)


def observe_sensor_name_for(resource_key: str) -> str:
    """`sqlmesh_observe` for the resource `sqlmesh`, `sqlmesh_<name>_observe` for a named one."""
    return f"{resource_key}_observe"


def observe_from_env() -> bool:
    """MXM_SQLMESH_OBSERVE: `on` or `off` (the default when unset)."""
    return switch_from_env(OBSERVE_ENV)


@dataclass(frozen=True)
class ObservedAsset:
    """What a report of one model needs from the definitions."""

    key: dg.AssetKey
    code_version: str | None
    parents: tuple[dg.AssetKey, ...]
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None


def observed_assets(
    definitions: list[dg.AssetsDefinition | dg.AssetSpec], keys: Mapping[str, dg.AssetKey]
) -> dict[str, ObservedAsset]:
    """Per model (`keys`: model name -> asset key) built in `definitions`: its key, code version,
    upstream keys and partitions, read back from the asset specs the translator made."""
    specs = {
        spec.key: spec
        for definition in definitions
        if isinstance(definition, dg.AssetsDefinition)
        for spec in definition.specs
    }
    observed = {}
    for model, key in keys.items():
        spec = specs.get(key)
        if spec is None:
            continue
        partitions_def = spec.partitions_def
        observed[model] = ObservedAsset(
            key=key,
            code_version=spec.code_version,
            parents=tuple(dep.asset_key for dep in spec.deps),
            partitions_def=(
                partitions_def
                if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
                else None
            ),
        )
    return observed


def read_served(project: SQLMeshProject) -> ServedState:
    """The environment's served models, read by a SQLMesh child in the project folder."""
    arguments = [project.location, project.gateway or "", str(project.cache_dir or "")]
    done = subprocess.run(
        child_command(OBSERVE_CHILD_MODULE, *arguments, project.environment),
        env=child_env(),
        cwd=project.path,  # where the `sqlmesh` CLI runs (common/interpreter.py)
        capture_output=True,
        text=True,
    )
    sys.stderr.write(done.stderr)
    replies = [
        line.removeprefix(SERVED_REPLY_PREFIX)
        for line in done.stdout.splitlines()
        if line.startswith(SERVED_REPLY_PREFIX)
    ]
    if not replies:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return ServedState(project.environment, error=f"no answer from SQLMesh: {detail[0]}")
    return ServedState.from_json(replies[-1])


def _outcome(served: ServedModel, intervals: list[tuple[int, int]]) -> ModelOutcome:
    return ModelOutcome(
        model=served.model,
        status=ModelStatus.EVALUATED,
        selected=False,
        intervals=intervals,
        snapshot_version=served.snapshot_version,
        fingerprint=served.fingerprint,
        physical_table=served.physical_table,
        view=served.view,
        data_version=served.data_version,
    )


def observed_events(
    instance: dg.DagsterInstance,
    state: ServedState,
    assets: Mapping[str, ObservedAsset],
    reported: dict[str, str],
) -> list[dg.AssetMaterialization]:
    """The materializations of the models whose served data changed since Dagster last recorded
    them and the sensor last reported them; `reported` (the cursor) gains them.

    A partitioned model gets one record per partition SQLMesh recorded that Dagster has not,
    or, when no partition is new (a restatement, a new version promoted), its latest one."""
    results = ExecutionResults(
        execution_id=f"outside-dagster-{uuid.uuid4().hex[:12]}",
        environment=state.environment,
        models={},
        started_at=0.0,
        finished_at=0.0,
        plan_attempts=0,
        command=COMMAND,
    )
    changed = [
        (served, assets[served.model])
        for served in state.models
        if served.model in assets
        and reported.get(served.model) != served.data_version
        and latest_data_version(instance, assets[served.model].key) != served.data_version
    ]
    versions_now = {asset.key: served.data_version for served, asset in changed}
    records: list[dg.AssetMaterialization] = []
    for served, asset in changed:
        tags = provenance_tags(
            instance, served.data_version, asset.code_version, list(asset.parents), versions_now
        )
        if asset.partitions_def is None:
            outcome = _outcome(served, [])
            records.append(
                events.materialization_for(asset.key, outcome, results, DESCRIPTION, tags)
            )
        else:
            records.extend(_partition_records(instance, served, asset, results, tags))
        reported[served.model] = served.data_version
    return records


def _partition_records(
    instance: dg.DagsterInstance,
    served: ServedModel,
    asset: ObservedAsset,
    results: ExecutionResults,
    tags: dict[str, str],
) -> list[dg.AssetMaterialization]:
    """The partitions SQLMesh recorded that Dagster has not, else the latest recorded one."""
    assert asset.partitions_def is not None
    recorded = partitions.keys_for_intervals(asset.partitions_def, served.intervals)
    known = instance.get_materialized_partitions(asset.key)
    new = [key for key in recorded if key not in known] or recorded[-1:]
    windows = {key: asset.partitions_def.time_window_for_partition_key(key) for key in new}
    return [
        dg.AssetMaterialization(
            asset_key=asset.key,
            partition=key,
            description=DESCRIPTION,
            metadata=events.provenance(
                _outcome(served, [(to_ms(window.start), to_ms(window.end))]),
                results,
            ),
            tags=tags,
        )
        for key, window in windows.items()
    ]


def _run_in_progress(instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> bool:
    """A Dagster run of these assets may be between SQLMesh writing and its steps reporting:
    its changes are its own to record."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS)))
    return any(
        (run.asset_selection is None and run.job_name.startswith("__ASSET_JOB"))
        or bool(keys & set(run.asset_selection or ()))
        for run in runs
    )


def observe_sensor(
    project: SQLMeshProject,
    assets: Mapping[str, ObservedAsset],
    name: str,
    running: bool = False,
) -> dg.SensorDefinition:
    """The sensor reporting `project`'s models (`assets`, by model name) that SQLMesh built
    outside Dagster; stopped unless `running`."""
    keys = {asset.key for asset in assets.values()}

    @dg.sensor(
        name=name,
        minimum_interval_seconds=60,
        default_status=(
            dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
        ),
        description="Reports, as runless materializations, the SQLMesh models whose served "
        "data changed outside Dagster (sqlmesh plan / sqlmesh run), once per change",
    )
    def sqlmesh_observe(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        reported: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        if _run_in_progress(context.instance, keys):
            return dg.SkipReason("A Dagster run of these assets is in progress")
        state = read_served(project)
        if state.busy or state.error:
            return dg.SkipReason(f"SQLMesh state not read: {state.busy or state.error}")
        records = observed_events(context.instance, state, assets, reported)
        if records:
            models = sorted({str(r.metadata[MODEL_NAME_METADATA_KEY].value) for r in records})
            context.log.info(f"Built by SQLMesh outside Dagster: {', '.join(models)}")
        return dg.SensorResult(asset_events=records, cursor=json.dumps(reported, sort_keys=True))

    return sqlmesh_observe
