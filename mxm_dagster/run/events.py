"""Turns one model's outcome into the Dagster events of its asset step.

Every materialization carries the same provenance fields (documented in docs/provenance.md), the
successor of the old pipeline's `_meta.json`/`_asset.json` sidecars.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import dagster as dg

from mxm_dagster.asset_graph import partitions
from mxm_dagster.asset_graph.metadata import MODEL_NAME_METADATA_KEY
from mxm_dagster.common.times import iso_from_ms
from mxm_dagster.records.results import AuditOutcome, ExecutionResults, ModelOutcome, ModelStatus

AUDITS_METADATA_KEY = "sqlmesh/audits"
#: What an up-to-date model's materialization says of the checks it reports no result for.
AUDITS_NOT_RUN_AGAIN = (
    "not run again: the data is unchanged, and SQLMesh runs a model's audits when it writes "
    "its data (docs/adr/0019). The checks' history holds the results of earlier runs; execute "
    "the checks to audit the current data now"
)


def provenance(outcome: ModelOutcome, results: ExecutionResults) -> dict[str, Any]:
    """The fields every materialization of a SQLMesh model carries."""
    metadata: dict[str, Any] = {
        MODEL_NAME_METADATA_KEY: outcome.model,
        "sqlmesh/outcome": outcome.status.value,
        "sqlmesh/execution_id": results.execution_id,
        "sqlmesh/environment": results.environment,
        "sqlmesh/command": results.command,
        "sqlmesh/selected": outcome.selected,
        "sqlmesh/reported_before_promotion": outcome.reported_before_promotion,
        # per model: SQLMesh restates what is below a restated model too (not what is above)
        "sqlmesh/restated": outcome.restated,
        "sqlmesh/snapshot_version": outcome.snapshot_version or "",
        "sqlmesh/fingerprint": outcome.fingerprint or "",
        "sqlmesh/physical_table": outcome.physical_table or "",
        "sqlmesh/view": outcome.view or "",
        "sqlmesh/intervals": dg.MetadataValue.json(
            [[iso_from_ms(start), iso_from_ms(end)] for start, end in outcome.intervals]
        ),
        "sqlmesh/duration_ms": outcome.duration_ms if outcome.duration_ms is not None else 0,
    }
    if outcome.row_count is not None:
        metadata["dagster/row_count"] = outcome.row_count
    if outcome.reason:  # a materialized outcome has one only when the model ended
        metadata["sqlmesh/reason"] = outcome.reason
    return metadata


def check_result(outcome: AuditOutcome) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN
    metadata: dict[str, Any] = {"sqlmesh/audit": outcome.name, "failed_rows": outcome.failed_rows}
    if not outcome.passed:  # rows summed over every batch the audit failed in
        metadata["sqlmesh/failed_batches"] = outcome.failed_batches
    if outcome.on_unchanged_data:  # no data written in this run: the audit read what was there
        metadata["sqlmesh/data_unchanged"] = True
    if outcome.query:
        metadata["audit_query"] = dg.MetadataValue.md(f"```sql\n{outcome.query}\n```")
    return dg.AssetCheckResult(
        check_name=outcome.check_name,
        passed=outcome.passed,
        severity=severity,
        metadata=metadata,
    )


def data_version(outcome: ModelOutcome) -> dg.DataVersion | None:
    """What the environment serves of the model, as SQLMesh's state says (ADR 15)."""
    return dg.DataVersion(outcome.data_version) if outcome.data_version else None


def materialization_for(
    key: dg.AssetKey,
    outcome: ModelOutcome,
    results: ExecutionResults,
    description: str = "Evaluated by SQLMesh as an upstream dependency of this run's selection",
    tags: Mapping[str, str] | None = None,
) -> dg.AssetMaterialization:
    """A record for a model SQLMesh evaluated outside the step that owns it (not selected, or
    its step skipped by Dagster); `tags` carry its data version (`run.data_versions`)."""
    return dg.AssetMaterialization(
        asset_key=key,
        description=description,
        metadata=provenance(outcome, results),
        tags=dict(tags) if tags else None,
    )


def check_evaluation(key: dg.AssetKey, outcome: AuditOutcome) -> dg.AssetCheckEvaluation:
    """An audit result logged outside the check's own step (skipped, or not in the run)."""
    result = check_result(outcome)
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=result.check_name or outcome.name,
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
    )


def filled_partitions(
    partitions_def: dg.TimeWindowPartitionsDefinition, outcome: ModelOutcome
) -> list[str]:
    """The partitions whose interval SQLMesh filled (and so recorded) in this execution."""
    if outcome.status in (ModelStatus.FAILED, ModelStatus.SKIPPED):
        return []
    return partitions.keys_for_intervals(partitions_def, outcome.intervals)


def partition_materializations(
    key: dg.AssetKey,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    outcome: ModelOutcome,
    results: ExecutionResults,
    covered: AbstractSet[str] = frozenset(),
    tags: Mapping[str, str] | None = None,
) -> list[dg.AssetMaterialization]:
    """One record per partition SQLMesh filled, except those the step's own output records.

    `covered` is what the step's output records: every partition of its range when it yields a
    MaterializeResult, none otherwise. SQLMesh may also fill intervals outside the range (gaps
    before it), and an unpartitioned run's output records no partition at all. These records
    keep the UI's partition view equal to SQLMesh's intervals.
    """
    metadata = provenance(outcome, results)
    return [
        dg.AssetMaterialization(
            asset_key=key,
            partition=partition,
            description="Interval filled by SQLMesh in this run",
            metadata=metadata,
            tags=dict(tags) if tags else None,
        )
        for partition in filled_partitions(partitions_def, outcome)
        if partition not in covered
    ]


def step_events(
    outcome: ModelOutcome,
    results: ExecutionResults,
    selected_checks: AbstractSet[dg.AssetCheckKey],
    asset_selected: bool = True,
) -> Iterator[Any]:
    """The asset step's events; raises `dg.Failure` when the model did not succeed. A step
    whose asset is not selected (its checks alone are) yields check results only."""
    model = outcome.model
    selected_names = {key.name for key in selected_checks}
    checks = [check_result(a) for a in outcome.audits if a.check_name in selected_names]
    if not asset_selected and outcome.status is not ModelStatus.FAILED:
        yield from checks
        return
    # up to date, or audits re-run on the data already there: a record that no data changed
    if outcome.status in (ModelStatus.EVALUATED, ModelStatus.UP_TO_DATE, ModelStatus.AUDITED):
        metadata = provenance(outcome, results)
        metadata["sqlmesh/data_changed"] = outcome.status is ModelStatus.EVALUATED
        if outcome.status is ModelStatus.UP_TO_DATE and selected_names and not checks:
            metadata[AUDITS_METADATA_KEY] = AUDITS_NOT_RUN_AGAIN
        # the same data version when nothing changed: Dagster's staleness sees no new data
        yield dg.MaterializeResult(
            metadata=metadata, check_results=checks, data_version=data_version(outcome)
        )
        return
    if outcome.status is ModelStatus.NOT_FILLED:
        # No materialization: SQLMesh did not bring the model up to date. The step succeeds (the
        # resource logs why) and Dagster skips the steps that depend on it in this run.
        yield from checks
        return
    yield from checks
    if outcome.status is ModelStatus.FAILED and results.plan_attempts == 0:
        raise dg.Failure(
            description="SQLMesh stopped before evaluating any model in this run, so "
            f"{model} was not evaluated: {outcome.error}",
            metadata={MODEL_NAME_METADATA_KEY: model, "sqlmesh/execution_id": results.execution_id},
        )
    if outcome.status is ModelStatus.FAILED:
        raise dg.Failure(
            description=f"SQLMesh model {model} failed: {outcome.error}",
            metadata={
                MODEL_NAME_METADATA_KEY: model,
                "sqlmesh/execution_id": results.execution_id,
                "sqlmesh/error": dg.MetadataValue.md(f"```\n{outcome.error}\n```"),
            },
        )
    if outcome.held_back_by:
        by = outcome.held_back_by
        failed = results.models.get(by)
        error = f": {failed.error}" if failed is not None and failed.error else ""
        raise dg.Failure(
            description=f"SQLMesh evaluated {model}, but it is not promoted: {by} reads it and "
            f"failed, and SQLMesh cannot promote the new version of {model} without giving "
            f"{by} a new version it does not build. The environment keeps serving the previous "
            f"version; fix {by} and run again. {by} failed{error}",
            metadata={MODEL_NAME_METADATA_KEY: model, "sqlmesh/held_back_by": outcome.held_back_by},
        )
    raise dg.Failure(
        description=f"SQLMesh did not evaluate {model}: upstream model {outcome.failed_upstream} "
        "failed in this run",
        metadata={
            MODEL_NAME_METADATA_KEY: model,
            "sqlmesh/failed_upstream": outcome.failed_upstream,
        },
    )
