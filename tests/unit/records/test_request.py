"""What a run asks SQLMesh to do: its window, its serialised form, plan vs run."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mxm_dagster.records.request import PROD, ExecutionRequest
from tests.unit.specs_factory import ms

WINDOW = (ms(2024, 1, 1), ms(2024, 1, 3))
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)


def test_an_unpartitioned_request_adds_nothing_to_the_plan() -> None:
    assert ExecutionRequest(PROD, {"a"}).plan_window(restating=False) == {}
    assert ExecutionRequest("dev", {"a"}).plan_window(restating=True) == {}


def test_a_prod_window_plans_as_of_the_windows_end() -> None:
    request = ExecutionRequest(PROD, {"a"}, window=WINDOW)
    assert request.plan_window(restating=False) == {"execution_time": END}


def test_a_dev_window_is_planned_as_start_and_end() -> None:
    request = ExecutionRequest("dev", {"a"}, window=WINDOW)
    assert request.plan_window(restating=False) == {"start": START, "end": END}


def test_a_restating_prod_window_is_planned_as_start_and_end() -> None:
    request = ExecutionRequest(PROD, {"a"}, restate=True, window=WINDOW)
    assert request.plan_window(restating=True) == {"start": START, "end": END}


def test_a_request_survives_its_json_form() -> None:
    request = ExecutionRequest(
        "dev",
        {"b", "a"},
        checks_only={"d", "c"},
        audit_unchanged=False,
        restate=True,
        row_counts=False,
        window=WINDOW,
        plan_options={"skip_tests": True},
    )
    raw = json.loads(json.dumps(request.to_dict()))
    assert raw["selected"] == ["a", "b"]
    assert raw["checks_only"] == ["c", "d"]
    assert ExecutionRequest.from_dict(raw) == request


def test_a_request_without_window_survives_its_json_form() -> None:
    request = ExecutionRequest(PROD, {"a"})
    assert ExecutionRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


@pytest.mark.parametrize(
    ("restate", "window", "may_run_without_plan", "runs_due"),
    [
        (False, None, True, True),
        (True, None, False, True),
        (False, WINDOW, False, False),
        (True, WINDOW, False, False),
    ],
)
def test_only_a_plain_request_can_be_a_run_and_only_windows_skip_what_is_due(
    restate: bool, window: tuple[int, int] | None, may_run_without_plan: bool, runs_due: bool
) -> None:
    request = ExecutionRequest(PROD, {"a"}, restate=restate, window=window)
    assert request.may_run_without_plan is may_run_without_plan
    assert request.runs_due is runs_due


def test_the_results_without_models_name_the_execution_before_any_model_finished() -> None:
    request = ExecutionRequest("dev", {"a"}, restate=True, window=WINDOW)
    empty = request.results_without_models()
    assert empty.execution_id == request.execution_id
    assert empty.environment == "dev"
    assert empty.started_at == request.started_at
    assert empty.models == {}
    assert empty.restated is True
    assert empty.window == WINDOW
