"""A model's freshness policy from its SQLMesh cron: the shifted deadline and its limits."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from mxm_dagster.assets.freshness import cron_freshness_policy, shifted_cron
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.records.specs import ProjectSpec
from tests.unit.specs_factory import model, ms

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("cron", "delta", "shifted"),
    [
        ("0 0 * * *", HOUR, "0 1 * * *"),
        ("0 6 * * 1-5", timedelta(minutes=30), "30 6 * * 1-5"),
        ("0 23 * * *", 2 * HOUR, "0 1 * * *"),  # a daily cron may wrap past midnight
        ("0 0,12 * * *", HOUR, "0 1,13 * * *"),
        ("*/15 * * * *", timedelta(minutes=5), "5,20,35,50 * * * *"),
        ("30 23 * * 1", HOUR, None),  # Monday 23:30 + 1 h is Tuesday: not one cron
        ("0 0 1 * *", HOUR, "0 1 1 * *"),
        ("10,50 0 * * *", timedelta(minutes=20), None),  # 00:30 and 01:10: not hours x minutes
        ("0 0 * * MON", HOUR, "0 1 * * MON"),
        ("0 9-17/4 * * *", HOUR, "0 10,14,18 * * *"),
        ("0 H * * *", HOUR, None),  # a field it does not read is left alone
    ],
)
def test_shifted_cron(cron: str, delta: timedelta, shifted: str | None) -> None:
    assert shifted_cron(cron, delta) == shifted


def test_policy_follows_cron_timezone_and_kind() -> None:
    daily = model(cron="@daily")
    assert cron_freshness_policy(daily) == dg.FreshnessPolicy.cron(
        deadline_cron="0 1 * * *", lower_bound_delta=HOUR
    )
    berlin = dataclasses.replace(model(cron="0 6 * * *"), cron_tz="Europe/Berlin")
    assert cron_freshness_policy(berlin, timedelta(minutes=90)) == dg.FreshnessPolicy.cron(
        deadline_cron="30 7 * * *",
        lower_bound_delta=timedelta(minutes=90),
        timezone="Europe/Berlin",
    )
    # the grace is cut to the gap between two ticks, as Dagster requires
    assert cron_freshness_policy(model(cron="*/5 * * * *")) == dg.FreshnessPolicy.cron(
        deadline_cron="0,5,10,15,20,25,30,35,40,45,50,55 * * * *",
        lower_bound_delta=timedelta(minutes=5),
    )
    # no single shifted cron: the next tick is the deadline
    assert cron_freshness_policy(model(cron="30 23 * * 1")) == dg.FreshnessPolicy.cron(
        deadline_cron="30 23 * * 1", lower_bound_delta=timedelta(days=7)
    )
    ended = dataclasses.replace(model(), end_ms=ms(2024, 2, 1))
    assert cron_freshness_policy(ended, now=datetime(2024, 1, 31, tzinfo=UTC)) is not None
    assert cron_freshness_policy(ended, now=datetime(2024, 2, 1, tzinfo=UTC)) is None
    assert cron_freshness_policy(model(kind="SEED")) is None
    assert cron_freshness_policy(model(cron=None)) is None
    assert cron_freshness_policy(model(is_external=True, kind="EXTERNAL")) is None


def test_translator_hook_overrides_the_policy() -> None:
    project = ProjectSpec(default_catalog="db", dialect="duckdb", engine="duckdb", models=())

    class Strict(SQLMeshTranslator):
        freshness_grace = timedelta(minutes=10)

    class NoFreshness(SQLMeshTranslator):
        freshness_grace = None

    key = dg.AssetKey(["s", "m"])
    spec = Strict(project).get_asset_spec(model(), key, [])
    assert spec.freshness_policy == dg.FreshnessPolicy.cron(
        deadline_cron="10 0 * * *", lower_bound_delta=timedelta(minutes=10)
    )
    assert NoFreshness(project).get_asset_spec(model(), key, []).freshness_policy is None
