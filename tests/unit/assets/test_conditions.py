"""Which declarative condition each model gets from the builder's `automation` option."""

from __future__ import annotations

import dataclasses

import pytest

from mxm_dagster.assets.conditions import (
    automation_from_env,
    on_sqlmesh_cron,
    on_upstream_change,
    sqlmesh_automation_condition,
)
from tests.unit.specs_factory import model


def test_a_model_gets_its_own_cron_in_its_time_zone() -> None:
    berlin = dataclasses.replace(model(cron="0 6 * * *"), cron_tz="Europe/Berlin")
    assert sqlmesh_automation_condition(berlin) == on_sqlmesh_cron("0 6 * * *", "Europe/Berlin")
    assert sqlmesh_automation_condition(model(cron="@hourly")) == on_sqlmesh_cron("0 * * * *")


def test_eager_adds_upstream_changes_and_needs_no_cron() -> None:
    daily = model(cron="@daily")
    assert sqlmesh_automation_condition(daily, eager=True) == (
        on_sqlmesh_cron("0 0 * * *") | on_upstream_change()
    )
    assert sqlmesh_automation_condition(model(cron=None)) is None
    assert sqlmesh_automation_condition(model(cron=None), eager=True) == on_upstream_change()
    external = model(kind="EXTERNAL", is_external=True)
    assert sqlmesh_automation_condition(external, eager=True) is None


def test_the_variable_takes_the_three_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MXM_SQLMESH_AUTOMATION", raising=False)
    assert automation_from_env() == "sensor"
    monkeypatch.setenv("MXM_SQLMESH_AUTOMATION", " Cron_Or_Eager ")
    assert automation_from_env() == "cron_or_eager"
    monkeypatch.setenv("MXM_SQLMESH_AUTOMATION", "eager")
    with pytest.raises(ValueError, match="MXM_SQLMESH_AUTOMATION must be one of"):
        automation_from_env()
