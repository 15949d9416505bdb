"""A model's `start` and `end` as SQLMesh resolves them, and how long a relative one holds.

SQLMesh accepts relative times (`start '3 days ago'`, `end 'yesterday'`) and resolves them
against the clock wherever it needs them. The spec cache records one resolution, so it has to
say until when that resolution holds: a Dagster partitions definition starting at the start
recorded yesterday is one partition short today.

Which moment that is depends on the expression: `3 days ago` is a "categorical" expression that
SQLMesh resolves from midnight UTC, so it moves once a day at midnight; `36 hours ago` moves with
the clock, and reaches the next day interval at noon. Rather than re-implement SQLMesh's (and
dateparser's) reading of each expression, the moment is found by asking SQLMesh to resolve it at
later moments: the first one at which it falls into another interval of the model's unit (the
only change Dagster's partitions and SQLMesh's intervals can see) ends its validity.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlmesh.core.node import IntervalUnit
from sqlmesh.utils.date import is_date, now, to_timestamp

from mxm_dagster.common.times import from_ms, to_ms

#: An absolute time resolves to the same moment more than a year later; a relative one does not.
_PROBE_AHEAD = timedelta(days=400)
_PRECISION_MS = 1000


def resolution_moment() -> datetime:
    """The clock as SQLMesh reads it to resolve relative times (UTC, to the minute)."""
    return now()


def resolve(value: Any, at: datetime, exclusive: bool = False) -> int:
    """`value` (a model's start, or with `exclusive` its end) in epoch ms as SQLMesh reads it
    at `at`: an end date covers its whole day, as SQLMesh's `make_exclusive` has it."""
    resolved = to_timestamp(value, relative_base=at)
    if exclusive and is_date(value):
        resolved += 86_400_000
    return resolved


def is_relative(value: Any, at: datetime) -> bool:
    return resolve(value, at) != resolve(value, at + _PROBE_AHEAD)


def holds_until(value: Any, unit: IntervalUnit, at: datetime) -> int | None:
    """The first moment (epoch ms) after `at` at which `value` resolves into another interval of
    `unit` than it does at `at`; None when `value` is absolute (or unset)."""
    if value is None or not is_relative(value, at):
        return None
    return _holds_until(str(value), unit, to_ms(at))


@lru_cache(maxsize=256)
def _holds_until(value: str, unit: IntervalUnit, at_ms: int) -> int:
    """Bisection over [at, at + 2 units]: relative times move forward with the clock, so the
    interval they fall into changes once in that span. If it does not, the resolution is
    checked again at the end of the span."""

    def interval_of(moment_ms: int) -> int:
        return to_ms(unit.cron_floor(resolve(value, from_ms(moment_ms))))

    first = interval_of(at_ms)
    low, high = at_ms, at_ms + 2 * unit.milliseconds
    if interval_of(high) == first:
        return high
    while high - low > _PRECISION_MS:
        middle = (low + high) // 2
        if interval_of(middle) == first:
            low = middle
        else:
            high = middle
    return high
