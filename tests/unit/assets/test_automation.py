"""Which models a cron tick makes due and the run requests it asks for, from hand-built specs."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from mxm_dagster.asset_graph.metadata import RANGE_END_TAG, RANGE_START_TAG
from mxm_dagster.asset_graph.partitions import partitions_def_from_model
from mxm_dagster.assets.automation import TICK_TAG, cron_ticked, due_models, run_requests
from tests.unit.specs_factory import model, ms

NOW = datetime(2024, 1, 5, 6, 30, tzinfo=UTC)
DAILY = model('"db"."s"."daily"', cron="@daily", start_ms=ms(2024, 1, 1))
SIX = model('"db"."s"."six"', cron="0 6 * * *", start_ms=ms(2024, 1, 1))
HOURLY = model('"db"."s"."hourly"', cron="@hourly", interval_unit="hour", start_ms=ms(2024, 1, 1))
FULL = model('"db"."s"."full"', kind="FULL", cron="@daily")
EXTERNAL = model('"db"."s"."ext"', cron="@daily", is_external=True)
KEYS = {m.name: dg.AssetKey(["db", "s", m.table]) for m in (DAILY, SIX, HOURLY, FULL, EXTERNAL)}


def test_a_cron_ticks_in_the_half_open_span_after_since() -> None:
    six = datetime(2024, 1, 5, 6, tzinfo=UTC)
    assert cron_ticked("0 6 * * *", None, datetime(2024, 1, 5, 5, tzinfo=UTC), six)
    assert not cron_ticked("0 6 * * *", None, six, datetime(2024, 1, 5, 7, tzinfo=UTC))
    after_berlin_six = datetime(2024, 1, 5, 5, 30, tzinfo=UTC)
    assert not cron_ticked("0 6 * * *", "Europe/Berlin", after_berlin_six, NOW)


def test_due_models_are_those_whose_cron_ticked_never_external_ones() -> None:
    since = datetime(2024, 1, 5, 5, 50, tzinfo=UTC)
    assert due_models([DAILY, SIX, HOURLY, FULL, EXTERNAL], since, NOW) == [SIX, HOURLY]
    since = datetime(2024, 1, 4, 23, 50, tzinfo=UTC)
    due = due_models([DAILY, SIX, FULL, EXTERNAL], since, NOW)
    assert due == [DAILY, SIX, FULL]


def test_unpartitioned_due_models_make_one_run_without_a_partition() -> None:
    (request,) = run_requests([DAILY, FULL], KEYS, NOW)
    assert request.asset_selection == sorted([KEYS[DAILY.name], KEYS[FULL.name]])
    assert request.tags == {TICK_TAG: NOW.isoformat()}


def test_partitioned_models_target_their_latest_partition_with_unpartitioned_ones_along() -> None:
    partitions = {
        DAILY.name: partitions_def_from_model(DAILY),
        SIX.name: partitions_def_from_model(SIX),
    }
    (request,) = run_requests([DAILY, SIX, FULL], KEYS, NOW, partitions)
    assert request.asset_selection == sorted(KEYS[m.name] for m in (DAILY, SIX, FULL))
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == "2024-01-04"


def test_models_with_different_partitions_get_a_run_each() -> None:
    partitions = {m.name: partitions_def_from_model(m) for m in (DAILY, HOURLY)}
    requests = run_requests([DAILY, HOURLY], KEYS, NOW, partitions)
    ranges = {
        tuple(r.asset_selection or ()): (r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG])
        for r in requests
    }
    assert ranges == {
        (KEYS[DAILY.name],): ("2024-01-04", "2024-01-04"),
        (KEYS[HOURLY.name],): ("2024-01-05-05:00", "2024-01-05-05:00"),
    }


def test_a_partitioned_model_with_no_complete_partition_yet_gets_no_run() -> None:
    fresh = model('"db"."s"."daily"', start_ms=ms(2024, 1, 5))
    assert run_requests([fresh], KEYS, NOW, {fresh.name: partitions_def_from_model(fresh)}) == []


def test_no_due_model_requests_no_run() -> None:
    assert run_requests([], KEYS, NOW) == []
