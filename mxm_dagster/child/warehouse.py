"""DuckDB allows one writing process per file: find out before SQLMesh starts writing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from mxm_dagster.common.errors import WarehouseBusyError

_LOCK_MESSAGE = "Could not set lock on file"


def wait_until_writable(
    warehouse: Path, timeout_seconds: float, log: Callable[[str], None] | None = None
) -> None:
    """Return once this process could open the warehouse for writing; fail clearly after a while.

    Opening and closing a connection leaves nothing behind, so a refusal costs nothing.
    """
    deadline = time.monotonic() + timeout_seconds
    announced = False
    while True:
        try:
            duckdb.connect(str(warehouse)).close()
            return
        except duckdb.IOException as exc:
            if _LOCK_MESSAGE not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    f"The DuckDB warehouse {warehouse} is held open by another process and "
                    f"stayed locked for {timeout_seconds:.0f} s; nothing was written. "
                    f"Close that process (DuckDB says: {exc}) and run again."
                ) from exc
            if not announced and log:
                log(f"Waiting up to {timeout_seconds:.0f} s for the warehouse {warehouse}: {exc}")
                announced = True
            time.sleep(0.5)
