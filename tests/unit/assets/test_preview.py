"""The plan preview's records and what the run worker makes of them (ADR 18), without SQLMesh."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from mxm_dagster.assets.preview import PlanPreviewConfig, _models, _window
from mxm_dagster.common.times import to_ms
from mxm_dagster.project.protocol import ChildOrder
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.preview import ModelPreview, PlanPreview, add_due_after
from mxm_dagster.records.request import ExecutionRequest
from mxm_dagster.run import preview

DAY = 86_400_000
NOV_1 = 1_793_491_200_000  # 2026-11-01T00:00Z


def day(n: int) -> tuple[int, int]:
    return (NOV_1 + n * DAY, NOV_1 + (n + 1) * DAY)


def a_plan() -> PlanPreview:
    return PlanPreview(
        environment="prod",
        execution_time=NOV_1 + 7 * DAY,
        models={
            "shop.orders": ModelPreview(
                "shop.orders", "breaking", "BREAKING", diff="-a\n+b", intervals=[day(0), day(1)]
            ),
            "shop.totals": ModelPreview(
                "shop.totals", "indirect breaking", "INDIRECT_BREAKING", modified_by=["shop.orders"]
            ),
            "shop.ledger": ModelPreview(
                "shop.ledger", "forward-only", "BREAKING", forward_only=True, refused="drops b"
            ),
            "shop.gone": ModelPreview("shop.gone", "removed"),
        },
    )


def test_a_preview_crosses_the_pipe_unchanged() -> None:
    plan = a_plan()
    again = PlanPreview.from_dict(plan.to_dict())
    assert again == plan
    assert again.refused == ["shop.ledger"]


def test_a_preview_order_says_so_across_the_pipe_and_an_order_without_the_field_runs() -> None:
    order = ChildOrder(
        SQLMeshProject.at("/p"), ExecutionRequest("prod", {"m"}), 1, 1, 1, preview=True
    )
    assert ChildOrder.from_json(order.to_json()).preview is True
    raw = json.loads(order.to_json())
    del raw["preview"]  # an order written before previews existed
    assert ChildOrder.from_json(json.dumps(raw)).preview is False


def test_what_a_run_fills_after_its_plan_is_added_where_the_plan_does_not_cover_it() -> None:
    planned = {"m": ModelPreview("m", "breaking", intervals=[day(0), day(1)])}
    due = {
        "m": ModelPreview("m", "breaking", intervals=[day(1), day(2)]),
        "n": ModelPreview("n", "unchanged", intervals=[day(2)]),
        "other": ModelPreview("other", "unchanged", intervals=[day(3)]),
    }
    add_due_after(planned, due, {"m", "n"})
    assert planned["m"].intervals == [day(0), day(1), day(2)]
    assert planned["n"].intervals == [day(2)] and planned["n"].change == "unchanged"
    assert "other" not in planned  # not planned by the run


def test_spans_join_contiguous_intervals() -> None:
    assert preview.spans([day(2), day(0), day(1), day(5)]) == [
        (day(0)[0], day(2)[1]),
        day(5),
    ]


def test_each_model_with_an_asset_gets_one_observation_with_its_place_in_the_plan() -> None:
    plan = a_plan()
    keys = {name: dg.AssetKey(name.split(".")) for name in plan.models if name != "shop.gone"}
    found = {o.asset_key.to_user_string(): o for o in preview.observations(plan, keys)}
    assert set(found) == {"shop/orders", "shop/totals", "shop/ledger"}
    orders = {k: v.value for k, v in found["shop/orders"].metadata.items()}
    assert orders["sqlmesh/change"] == "breaking"
    assert orders["sqlmesh/interval_count"] == 2
    assert orders["sqlmesh/fill_spans"] == [
        ["2026-11-01T00:00:00+00:00", "2026-11-03T00:00:00+00:00"]
    ]
    assert orders["sqlmesh/diff"] == "```diff\n-a\n+b\n```"
    assert orders["sqlmesh/execution_time"].startswith("2026-11-08")
    totals = {k: v.value for k, v in found["shop/totals"].metadata.items()}
    assert totals["sqlmesh/modified_by"] == "shop.orders"
    assert "sqlmesh/fill_spans" not in totals
    ledger = {k: v.value for k, v in found["shop/ledger"].metadata.items()}
    assert ledger["sqlmesh/destructive_refused"] is True
    assert ledger["sqlmesh/forward_only"] is True
    assert all(o.tags.get("dagster/data_version") is None for o in found.values())


def test_the_summary_says_a_run_would_be_refused_and_lists_every_model() -> None:
    plan = a_plan()
    text = preview.summary(plan, {"shop.orders": dg.AssetKey(["shop", "orders"])}, 3)
    assert "**A run would be refused**" in text and "`shop.ledger`" in text
    assert "| `shop.gone` | (no asset) | removed |" in text
    assert "| `shop.orders` | shop/orders | breaking | BREAKING |" in text
    clean = PlanPreview("dev", NOV_1)
    assert "SQLMesh would change and fill nothing" in preview.summary(clean, {}, 0)
    failed = PlanPreview("dev", 0, error="NoChangesPlanError: Creating a new environment ...")
    assert "A run would fail" in preview.summary(failed, {}, 0)


def test_the_preview_job_takes_asset_keys_and_a_window_as_a_partitioned_run_has() -> None:
    keys = {"shop.orders": dg.AssetKey(["shop", "orders"]), "shop.x": dg.AssetKey(["shop", "x"])}
    assert _models(PlanPreviewConfig(), keys) == {"shop.orders", "shop.x"}
    assert _models(PlanPreviewConfig(assets=["shop/orders"]), keys) == {"shop.orders"}
    with pytest.raises(dg.Failure, match="Not SQLMesh models of this project: raw/other"):
        _models(PlanPreviewConfig(assets=["raw/other"]), keys)
    assert _window(PlanPreviewConfig()) is None
    start, end = _window(PlanPreviewConfig(start="2026-11-01", end="2026-11-03")) or (None, None)
    assert (to_ms(start), to_ms(end)) == (NOV_1, NOV_1 + 2 * DAY)
    with pytest.raises(dg.Failure, match="both"):
        _window(PlanPreviewConfig(start="2026-11-01"))
