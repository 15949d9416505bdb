"""A model's freshness policy from its SQLMesh cron: the shifted deadline and its limits; the
switch of each surface (builder, component, code location), off by default."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster.components.testing.utils import component_defs

from mxm_dagster import SQLMeshProject, SQLMeshProjectComponent, sqlmesh_definitions
from mxm_dagster.assets.freshness import (
    FRESHNESS_ENV,
    cron_freshness_policy,
    freshness_from_env,
    shifted_cron,
)
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.code_location import build_definitions
from mxm_dagster.records.specs import LoadedModels
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
    project = LoadedModels(default_catalog="db", dialect="duckdb", engine="duckdb", models=())

    class Strict(SQLMeshTranslator):
        freshness_grace = timedelta(minutes=10)

    class Always(SQLMeshTranslator):
        def get_freshness_policy(self, model):
            return dg.FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=HOUR)

    key = dg.AssetKey(["s", "m"])
    spec = Strict(project, freshness=True).get_asset_spec(model(), key, [])
    assert spec.freshness_policy == dg.FreshnessPolicy.cron(
        deadline_cron="10 0 * * *", lower_bound_delta=timedelta(minutes=10)
    )
    # off by default: the grace alone turns nothing on, an overridden hook wins either way
    assert Strict(project).get_asset_spec(model(), key, []).freshness_policy is None
    assert Always(project).get_asset_spec(model(), key, []).freshness_policy is not None


def test_the_switch_is_off_unless_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FRESHNESS_ENV, raising=False)
    assert freshness_from_env() is False
    monkeypatch.setenv(FRESHNESS_ENV, " On ")
    assert freshness_from_env() is True
    monkeypatch.setenv(FRESHNESS_ENV, "true")
    with pytest.raises(ValueError, match="MXM_SQLMESH_FRESHNESS must be 'on' or 'off'"):
        freshness_from_env()


#: Models with and without a cron SQLMesh owes intervals on: only the first two get policies.
_MODELS = (
    model('"db"."s"."daily"'),
    model('"db"."s"."hourly"', cron="@hourly"),
    model('"db"."s"."seed"', kind="SEED", interval_unit=None),
    model('"db"."s"."no_cron"', cron=None),
    model('"db"."s"."source"', kind="EXTERNAL", is_external=True),
)
_WITH_POLICY = {"s/daily", "s/hourly"}


def _policies(defs: dg.Definitions) -> dict[str, dg.FreshnessPolicy | None]:
    return {s.key.to_user_string(): s.freshness_policy for s in defs.resolve_all_asset_specs()}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SQLMeshProject:
    """A project whose spec is `_MODELS`, without SQLMesh (the spec is what the surfaces read)."""
    spec = LoadedModels(default_catalog="db", dialect="duckdb", engine="duckdb", models=_MODELS)
    monkeypatch.setattr(SQLMeshProject, "load_spec", lambda self: spec)
    monkeypatch.delenv(FRESHNESS_ENV, raising=False)
    return SQLMeshProject.at(str(tmp_path))


def _assert_switched(off: dg.Definitions, on: dg.Definitions) -> None:
    assert set(_policies(off)) == {"s/daily", "s/hourly", "s/seed", "s/no_cron", "s/source"}
    assert not any(_policies(off).values())
    assert {key for key, policy in _policies(on).items() if policy} == _WITH_POLICY
    assert _policies(on)["s/hourly"] == dg.FreshnessPolicy.cron(
        deadline_cron="0 * * * *", lower_bound_delta=HOUR
    )


def test_builder_switch(project: SQLMeshProject) -> None:
    _assert_switched(sqlmesh_definitions(project), sqlmesh_definitions(project, freshness=True))
    # a translator class is built with the switch; an instance keeps its own and must agree
    on_class = sqlmesh_definitions(project, translator=SQLMeshTranslator, freshness=True)
    assert {key for key, policy in _policies(on_class).items() if policy} == _WITH_POLICY
    with pytest.raises(ValueError, match="freshness=True with a translator instance"):
        sqlmesh_definitions(
            project, translator=SQLMeshTranslator(project.load_spec()), freshness=True
        )


def test_component_switch(project: SQLMeshProject) -> None:
    off = component_defs(component=SQLMeshProjectComponent(project=str(project.path)))
    on = component_defs(
        component=SQLMeshProjectComponent(project=str(project.path), freshness=True)
    )
    _assert_switched(off, on)


def test_code_location_switch(project: SQLMeshProject, monkeypatch: pytest.MonkeyPatch) -> None:
    off = build_definitions(project)
    monkeypatch.setenv(FRESHNESS_ENV, "on")
    _assert_switched(off, build_definitions(project))
