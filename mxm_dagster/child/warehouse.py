"""DuckDB allows one writing process per file: find out before SQLMesh starts writing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from mxm_dagster.common.errors import WarehouseBusyError
from mxm_dagster.common.locks import wait_until

_LOCK_MESSAGE = "Could not set lock on file"


def wait_until_writable(
    warehouse: Path, timeout_seconds: float, log: Callable[[str], None] | None = None
) -> None:
    """Return once this process could open the warehouse for writing; fail clearly after a while.

    Opening and closing a connection leaves nothing behind, so a refusal costs nothing.
    """
    refusals: list[duckdb.IOException] = []

    def writable() -> bool:
        try:
            duckdb.connect(str(warehouse)).close()
            return True
        except duckdb.IOException as exc:
            if _LOCK_MESSAGE not in str(exc):
                raise
            refusals.append(exc)
            return False

    def say_waiting() -> None:
        if log:
            waited = f"Waiting up to {timeout_seconds:.0f} s for the warehouse {warehouse}"
            log(f"{waited}: {refusals[-1]}")

    if not wait_until(writable, timeout_seconds, 0.5, say_waiting):
        raise WarehouseBusyError(
            f"The DuckDB warehouse {warehouse} is held open by another process and "
            f"stayed locked for {timeout_seconds:.0f} s; nothing was written. "
            f"Close that process (DuckDB says: {refusals[-1]}) and run again."
        ) from refusals[-1]
