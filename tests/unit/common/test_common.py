"""The helpers every process shares: atomic writes, waiting with a deadline, epoch ms."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mxm_dagster.common.files import write_atomically
from mxm_dagster.common.locks import wait_until
from mxm_dagster.common.times import from_ms, iso_from_ms, to_ms


def test_an_atomic_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "marker.json"
    write_atomically(target, "first")
    write_atomically(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["marker.json"]


def test_waiting_returns_as_soon_as_done_and_announces_the_wait_once() -> None:
    answers = iter([False, False, True])
    announced: list[str] = []
    assert wait_until(lambda: next(answers), 5, 0.01, lambda: announced.append("waiting"))
    assert announced == ["waiting"]


def test_waiting_gives_up_after_the_deadline() -> None:
    assert wait_until(lambda: False, 0.05, 0.01) is False


def test_done_at_once_is_no_wait() -> None:
    announced: list[str] = []
    assert wait_until(lambda: True, 0, 0.01, lambda: announced.append("waiting"))
    assert announced == []


def test_epoch_ms_and_datetimes_convert_both_ways_in_utc() -> None:
    moment = datetime(2024, 3, 1, 6, 30, tzinfo=UTC)
    assert to_ms(moment) == 1709274600000
    assert from_ms(1709274600000) == moment
    assert iso_from_ms(1709274600000) == "2024-03-01T06:30:00+00:00"
