"""The observing sensor's pure parts: its switch and the served-state reply (ADR 15)."""

from __future__ import annotations

import pytest

from mxm_dagster.assets.observe import observe_from_env, observe_sensor_name_for
from mxm_dagster.records.served import ServedModel, ServedState


def test_the_switch_is_off_unless_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MXM_SQLMESH_OBSERVE", raising=False)
    assert observe_from_env() is False
    monkeypatch.setenv("MXM_SQLMESH_OBSERVE", " ON ")
    assert observe_from_env() is True
    monkeypatch.setenv("MXM_SQLMESH_OBSERVE", "yes")
    with pytest.raises(ValueError, match="MXM_SQLMESH_OBSERVE must be 'on' or 'off'"):
        observe_from_env()


def test_one_sensor_name_per_project() -> None:
    assert observe_sensor_name_for("sqlmesh") == "sqlmesh_observe"
    assert observe_sensor_name_for("sqlmesh_sales") == "sqlmesh_sales_observe"


def test_the_reply_survives_json() -> None:
    state = ServedState(
        environment="prod",
        models=[ServedModel('"db"."s"."t"', "v1", "ver", "fp", "phys", "s.t", [(1, 2), (2, 3)])],
    )
    assert ServedState.from_json(state.to_json()) == state
    busy = ServedState(environment="dev", busy="a run holds the SQLMesh project lock")
    assert ServedState.from_json(busy.to_json()) == busy
