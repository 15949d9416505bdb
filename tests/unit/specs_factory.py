"""Hand-built records for the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime

from mxm_dagster.records.specs import AuditSpec, ModelSpec


def ms(*parts: int) -> int:
    """Epoch ms of a UTC datetime."""
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def model(
    name: str = '"db"."s"."m"',
    kind: str = "INCREMENTAL_BY_TIME_RANGE",
    interval_unit: str | None = "day",
    start_ms: int | None = None,
    audits: tuple[AuditSpec, ...] = (),
    depends_on: tuple[str, ...] = (),
    cron: str | None = "@daily",
    is_external: bool = False,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        catalog="db",
        schema="s",
        table=name.rsplit(".", 1)[-1].strip('"'),
        kind=kind,
        interval_unit=interval_unit,
        start_ms=ms(2024, 1, 1) if start_ms is None else start_ms,
        audits=audits,
        depends_on=depends_on,
        cron=cron,
        is_external=is_external,
    )
