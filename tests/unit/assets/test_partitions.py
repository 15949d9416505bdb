"""Partition <-> interval mapping, crons and the partitions switch, without any run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pytest

from mxm_dagster.asset_graph.partitions import (
    PARTITIONS_ENV,
    dagster_cron,
    full_range,
    is_due,
    keys_for_intervals,
    partitions_def_from_model,
    partitions_from_env,
)
from tests.unit.specs_factory import model, ms

DAY_LATER = datetime(2024, 1, 2, tzinfo=UTC)  # enough partitions for the sub-daily units


@pytest.mark.parametrize(
    ("unit", "cron", "first_key", "second_key", "now"),
    [
        ("year", "0 0 1 1 *", "2024-01-01", "2025-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
        ("month", "0 0 1 * *", "2024-01-01", "2024-02-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("day", "0 0 * * *", "2024-01-01", "2024-01-02", datetime(2024, 1, 3, tzinfo=UTC)),
        ("hour", "0 * * * *", "2024-01-01-00:00", "2024-01-01-01:00", DAY_LATER),
        ("half_hour", "*/30 * * * *", "2024-01-01-00:00", "2024-01-01-00:30", DAY_LATER),
        ("quarter_hour", "*/15 * * * *", "2024-01-01-00:00", "2024-01-01-00:15", DAY_LATER),
        ("five_minute", "*/5 * * * *", "2024-01-01-00:00", "2024-01-01-00:05", DAY_LATER),
    ],
)
def test_each_interval_unit_gives_utc_windows_of_that_unit_from_the_model_start(
    unit: str, cron: str, first_key: str, second_key: str, now: datetime
) -> None:
    partitions_def = partitions_def_from_model(model(interval_unit=unit, start_ms=ms(2024, 1, 1)))
    assert partitions_def is not None
    assert partitions_def.cron_schedule == cron
    assert partitions_def.timezone == "UTC"
    assert partitions_def.start == datetime(2024, 1, 1, tzinfo=UTC)
    with dg.partition_loading_context(effective_dt=now):
        keys = partitions_def.get_partition_keys()
    assert keys[:2] == [first_key, second_key]
    window = partitions_def.time_window_for_partition_key(first_key)
    assert window.start == datetime(2024, 1, 1, tzinfo=UTC)


def test_a_daily_model_starting_mid_month_has_its_first_partition_on_its_start_day() -> None:
    partitions_def = partitions_def_from_model(model(start_ms=ms(2024, 3, 15)))
    assert partitions_def is not None
    assert partitions_def.get_first_partition_key() == "2024-03-15"


def test_the_last_partition_is_the_last_complete_interval() -> None:
    partitions_def = partitions_def_from_model(model(start_ms=ms(2024, 1, 1)))
    assert partitions_def is not None
    with dg.partition_loading_context(effective_dt=datetime(2024, 1, 5, 12, tzinfo=UTC)):
        assert partitions_def.get_last_partition_key() == "2024-01-04"


@pytest.mark.parametrize(
    "spec",
    [
        model(kind="FULL"),
        model(kind="INCREMENTAL_BY_UNIQUE_KEY"),
        model(interval_unit=None),
        model(interval_unit="fortnight"),
    ],
)
def test_models_without_time_intervals_have_no_partitions(spec) -> None:
    assert partitions_def_from_model(spec) is None


def test_a_model_without_a_start_has_no_partitions() -> None:
    assert partitions_def_from_model(replace(model(), start_ms=None)) is None


def test_intervals_map_to_the_partitions_they_cover_whole() -> None:
    partitions_def = partitions_def_from_model(model(start_ms=ms(2024, 1, 1)))
    assert partitions_def is not None
    keys = keys_for_intervals(
        partitions_def,
        [(ms(2024, 1, 2), ms(2024, 1, 4)), (ms(2024, 1, 1), ms(2024, 1, 2))],
    )
    assert keys == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_an_interval_ending_before_a_window_starts_it_maps_to_no_partition() -> None:
    partitions_def = partitions_def_from_model(model(start_ms=ms(2024, 1, 1)))
    assert partitions_def is not None
    afternoon = (ms(2024, 1, 2, 12), ms(2024, 1, 3))
    assert keys_for_intervals(partitions_def, [afternoon]) == []


def test_a_partial_window_maps_to_no_partition() -> None:
    partitions_def = partitions_def_from_model(model(start_ms=ms(2024, 1, 1)))
    assert partitions_def is not None
    morning = (ms(2024, 1, 2), ms(2024, 1, 2, 12))
    assert keys_for_intervals(partitions_def, [morning]) == []


def test_hourly_intervals_map_to_hour_keys() -> None:
    partitions_def = partitions_def_from_model(model(interval_unit="hour", start_ms=ms(2024, 1, 1)))
    assert partitions_def is not None
    keys = keys_for_intervals(partitions_def, [(ms(2024, 1, 1, 22), ms(2024, 1, 2, 1))])
    assert keys == ["2024-01-01-22:00", "2024-01-01-23:00", "2024-01-02-00:00"]


def test_the_full_range_of_one_definition_runs_from_first_to_last_partition() -> None:
    models = [
        model('"db"."s"."a"', start_ms=ms(2024, 1, 1)),
        model('"db"."s"."b"', start_ms=ms(2024, 1, 1)),
        model('"db"."s"."full"', kind="FULL"),
    ]
    with dg.partition_loading_context(effective_dt=datetime(2024, 1, 10, 3, tzinfo=UTC)):
        assert full_range(models) == "2024-01-01...2024-01-09"


def test_a_project_without_time_partitioned_models_has_no_range() -> None:
    assert full_range([model(kind="FULL"), model(kind="VIEW")]) is None


def test_mixed_partitions_are_refused_naming_each_group() -> None:
    models = [
        model('"db"."s"."daily"', start_ms=ms(2024, 1, 1)),
        model('"db"."s"."hourly"', interval_unit="hour", start_ms=ms(2024, 1, 1)),
        model('"db"."s"."late"', start_ms=ms(2024, 2, 1)),
    ]
    with pytest.raises(ValueError) as raised:
        full_range(models)
    message = str(raised.value)
    assert '0 0 * * * from 2024-01-01T00:00:00+00:00: "db"."s"."daily"' in message
    assert '0 * * * * from 2024-01-01T00:00:00+00:00: "db"."s"."hourly"' in message
    assert '0 0 * * * from 2024-02-01T00:00:00+00:00: "db"."s"."late"' in message


def test_a_daily_interval_with_a_six_o_clock_cron_is_due_at_six_the_next_day() -> None:
    end = datetime(2024, 1, 2, tzinfo=UTC)
    assert not is_due("0 6 * * *", None, end, datetime(2024, 1, 2, 5, 59, tzinfo=UTC))
    assert is_due("0 6 * * *", None, end, datetime(2024, 1, 2, 6, tzinfo=UTC))
    assert is_due("0 6 * * *", None, end, datetime(2024, 1, 3, tzinfo=UTC))


def test_a_daily_alias_cron_makes_yesterday_due_at_midnight() -> None:
    end = datetime(2024, 1, 2, tzinfo=UTC)
    assert is_due("@daily", None, end, datetime(2024, 1, 2, tzinfo=UTC))
    assert not is_due("@daily", None, end, datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC))


def test_the_cron_timezone_moves_the_tick() -> None:
    end = datetime(2024, 1, 2, tzinfo=UTC)
    # 06:00 in New York is 11:00 UTC in January
    assert not is_due("0 6 * * *", "America/New_York", end, datetime(2024, 1, 2, 10, tzinfo=UTC))
    assert is_due("0 6 * * *", "America/New_York", end, datetime(2024, 1, 2, 11, tzinfo=UTC))


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        (" @HOURLY ", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        (" 0 6 * * * ", "0 6 * * *"),
    ],
)
def test_cron_aliases_are_spelled_out_in_five_fields(cron: str, expected: str) -> None:
    assert dagster_cron(cron) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("on", True), (" ON ", True), ("off", False), ("Off", False), ("", False), ("  ", False)],
)
def test_the_partitions_switch_reads_on_and_off(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv(PARTITIONS_ENV, value)
    assert partitions_from_env() is expected


def test_partitions_are_off_when_the_switch_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARTITIONS_ENV, raising=False)
    assert partitions_from_env() is False


@pytest.mark.parametrize("value", ["yes", "1", "true"])
def test_any_other_switch_value_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(PARTITIONS_ENV, value)
    with pytest.raises(ValueError, match=f"must be 'on' or 'off', not '{value}'"):
        partitions_from_env()
