"""What the Dagster run says happened, read from the DagsterInstance's event log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mxm_dagster.asset_graph.metadata import MODEL_NAME_METADATA_KEY


@dataclass(frozen=True)
class CheckClaim:
    model: str
    audit: str
    passed: bool
    unchanged_data: bool


@dataclass
class Claims:
    """Per SQLMesh model: the outcomes its materializations state (`sqlmesh/outcome`), its check
    evaluations, and the models whose step failed."""

    success: bool
    outcomes: dict[str, set[str]] = field(default_factory=dict)
    checks: list[CheckClaim] = field(default_factory=list)
    failed_models: set[str] = field(default_factory=set)
    #: model -> [start, end) epoch ms of every partition a materialization was recorded for
    partitions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def read_claims(
    instance: dg.DagsterInstance,
    run_id: str,
    model_by_key: dict[dg.AssetKey, str],
    windows: Callable[[dg.AssetKey, str], tuple[int, int]] | None = None,
) -> Claims:
    """`windows` turns an asset's partition key into its time window (from the definitions the
    run used), for partition records."""
    run = instance.get_run_by_id(run_id)
    claims = Claims(success=bool(run and run.is_success))
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            meta = {k: v.value for k, v in mat.metadata.items()}
            model = str(meta.get(MODEL_NAME_METADATA_KEY) or model_by_key.get(mat.asset_key))
            claims.outcomes.setdefault(model, set()).add(str(meta.get("sqlmesh/outcome")))
            if mat.partition and windows is not None:
                window = windows(mat.asset_key, mat.partition)
                claims.partitions.setdefault(model, []).append(window)
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            meta = {k: v.value for k, v in data.metadata.items()}
            claims.checks.append(
                CheckClaim(
                    model=model_by_key.get(data.asset_key, data.asset_key.to_user_string()),
                    audit=str(meta.get("sqlmesh/audit", data.check_name)),
                    passed=bool(data.passed),
                    unchanged_data=bool(meta.get("sqlmesh/data_unchanged", False)),
                )
            )
        elif kind == "STEP_FAILURE":
            failure = event.event_specific_data.user_failure_data
            meta = {k: v.value for k, v in (failure.metadata if failure else {}).items()}
            if meta.get(MODEL_NAME_METADATA_KEY):
                claims.failed_models.add(str(meta[MODEL_NAME_METADATA_KEY]))
    return claims
