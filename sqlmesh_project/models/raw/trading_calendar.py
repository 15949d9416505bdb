"""raw.trading_calendar: the exchange's trading days, computed in Python (no I/O, no network)."""

from __future__ import annotations

import datetime as dt
import typing as t

import pandas as pd
from sqlglot import exp
from sqlmesh import ExecutionContext, model

# ISO strings, not date objects: SQLMesh serialises a Python model's globals.
CALENDAR_START = "2023-01-02"
CALENDAR_END = "2025-12-31"


def _easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _holidays(year: int) -> dict[dt.date, str]:
    """Xetra-like holidays; same rule as scripts/generate_sample_data.py (31 Dec is trading)."""
    easter = _easter_sunday(year)
    return {
        dt.date(year, 1, 1): "New Year's Day",
        easter - dt.timedelta(days=2): "Good Friday",
        easter + dt.timedelta(days=1): "Easter Monday",
        dt.date(year, 5, 1): "Labour Day",
        dt.date(year, 12, 24): "Christmas Eve",
        dt.date(year, 12, 25): "Christmas Day",
        dt.date(year, 12, 26): "Boxing Day",
    }


@model(
    "raw.trading_calendar",
    kind="FULL",
    owner="quant-research",
    cron="@daily",
    description=(
        "Trading calendar of the sample exchange (Mon-Fri without exchange holidays) from "
        f"{CALENDAR_START} to {CALENDAR_END}, computed deterministically in pandas."
    ),
    tags=["justetf", "raw", "calendar", "python"],
    grain="trade_date",
    columns={
        "trade_date": "DATE",
        "calendar_year": "INT",
        "calendar_month": "INT",
        "iso_week": "INT",
        "day_of_week": "INT",
        "trading_day_number": "INT",
        "is_month_end": "BOOLEAN",
        "is_year_end": "BOOLEAN",
    },
    column_descriptions={
        "trade_date": "A trading day of the exchange.",
        "calendar_year": "Calendar year of trade_date.",
        "calendar_month": "Calendar month (1-12) of trade_date.",
        "iso_week": "ISO 8601 week number of trade_date.",
        "day_of_week": "ISO day of week (1 = Monday ... 5 = Friday).",
        "trading_day_number": "1-based sequence number of the trading day in the calendar.",
        "is_month_end": "True on the last trading day of a calendar month.",
        "is_year_end": "True on the last trading day of a calendar year.",
    },
    audits=[
        ("unique_values", {"columns": [exp.column("trade_date")]}),
        ("not_null", {"columns": [exp.column("trade_date"), exp.column("trading_day_number")]}),
        ("accepted_range", {"column": exp.column("day_of_week"), "min_v": 1, "max_v": 5}),
    ],
)
def execute(
    context: ExecutionContext,
    start: dt.datetime,
    end: dt.datetime,
    execution_time: dt.datetime,
    **kwargs: t.Any,
) -> pd.DataFrame:
    first = dt.date.fromisoformat(CALENDAR_START)
    last = dt.date.fromisoformat(CALENDAR_END)
    holidays: set[dt.date] = set()
    for year in range(first.year, last.year + 1):
        holidays |= set(_holidays(year))

    days = pd.bdate_range(first, last)
    days = days[~days.isin(pd.DatetimeIndex(sorted(holidays)))]

    frame = pd.DataFrame({"trade_date": days})
    frame["calendar_year"] = frame.trade_date.dt.year
    frame["calendar_month"] = frame.trade_date.dt.month
    frame["iso_week"] = frame.trade_date.dt.isocalendar().week.astype("int64")
    frame["day_of_week"] = frame.trade_date.dt.dayofweek + 1
    frame["trading_day_number"] = range(1, len(frame) + 1)
    month = frame.trade_date.dt.to_period("M")
    frame["is_month_end"] = month.ne(month.shift(-1))
    frame["is_year_end"] = frame.calendar_year.ne(frame.calendar_year.shift(-1))
    frame["trade_date"] = frame.trade_date.dt.date
    return frame
