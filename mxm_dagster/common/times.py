"""SQLMesh counts time in epoch milliseconds (UTC); Dagster and people read datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def from_ms(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def iso_from_ms(epoch_ms: int) -> str:
    return from_ms(epoch_ms).isoformat()
