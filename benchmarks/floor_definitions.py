"""Dagster's own floor for the benchmark graph: the same assets, steps and checks, no SQLMesh.

One step per model, shaped exactly like mxm_dagster's (a one-spec subsettable `multi_asset` with
the model's asset key, its upstream deps and one blocking check per audit of the generated model,
`BENCH_FLOOR_AUDITS` of them, default 1), whose body does nothing but report a materialization
and its passing checks. Timing `dagster asset materialize --select '*'` on
this code location measures what Dagster itself costs for the graph on a given instance, before
any integration work: run creation, the "planned" events, the per-step bookkeeping. A per-model
integration cannot be faster than this floor plus whatever part of SQLMesh's work it fails to
overlap with it.

The graph comes from `generate_project.plan_models(BENCH_FLOOR_MODELS)` (or `plan_wide_models`
when `BENCH_FLOOR_SHAPE=wide`), so it is identical to the generated SQLMesh project of that size
(asset keys `schema/table`, as mxm_dagster names them).
"""

import os

import dagster as dg

from benchmarks.generate_project import (
    AUDITS,
    FLOOR_AUDITS_ENV,
    FLOOR_MODELS_ENV,
    FLOOR_SHAPE_ENV,
    ModelSpec,
    plan_models,
    plan_wide_models,
)

#: One check per audit, as mxm_dagster names them (the audit's name).
CHECK_NAMES = [audit.split("(")[0] for audit in AUDITS[: int(os.environ.get(FLOOR_AUDITS_ENV, 1))]]


def _key(model: ModelSpec) -> dg.AssetKey:
    return dg.AssetKey([model.schema, model.table])


def _model_asset(model: ModelSpec) -> dg.AssetsDefinition:
    key = _key(model)
    spec = dg.AssetSpec(key, deps=[dg.AssetKey(p.split(".")) for p in model.parents])
    checks = [dg.AssetCheckSpec(name, asset=key, blocking=True) for name in CHECK_NAMES]

    @dg.multi_asset(
        name=f"{model.schema}__{model.table}", specs=[spec], check_specs=checks, can_subset=True
    )
    def _report(context: dg.AssetExecutionContext):  # type: ignore[no-untyped-def]
        yield dg.MaterializeResult(
            asset_key=key,
            check_results=[dg.AssetCheckResult(check_name=n, passed=True) for n in CHECK_NAMES],
        )

    return _report


_WIDE = os.environ.get(FLOOR_SHAPE_ENV) == "wide"
_GRAPH = (plan_wide_models if _WIDE else plan_models)(int(os.environ[FLOOR_MODELS_ENV]))

defs = dg.Definitions(
    assets=[_model_asset(m) for m in _GRAPH],
    executor=dg.in_process_executor,
)
