"""A lock in the SQLMesh state database: runs on different machines take turns on one state.

The file lock (`common.locks`) serialises runs on one machine. Two machines share only the
servers, so when SQLMesh's state is in PostgreSQL the child also holds a session-level advisory
lock there while it plans and runs (ADR 13). Postgres drops it with the session, so a killed run
(its connection gone) leaves nothing behind. It needs psycopg2 only, no SQLMesh.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2

from mxm_dagster.common.errors import WarehouseBusyError
from mxm_dagster.common.locks import wait_until


def _now() -> str:
    """Wall-clock time for the log line: the run's log may store it seconds later (batched)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def lock_key(state_schema: str, environment: str) -> int:
    """A signed 64-bit advisory lock key for one project state (its schema) and environment.

    Every machine derives the same key from what it shares (the state schema in that database),
    not from a folder path, which differs between machines."""
    digest = hashlib.sha256(f"mxm_dagster|{state_schema}|{environment}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def state_lock(
    connect_arguments: dict[str, Any],
    state_schema: str,
    environment: str,
    timeout_seconds: float,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the advisory lock of `state_schema` + `environment`, waiting at most
    `timeout_seconds` for it (then `WarehouseBusyError`), saying once that it waits."""
    what = (
        f"SQLMesh state lock (schema {state_schema!r}, environment {environment!r}, "
        f"database {connect_arguments.get('dbname')!r} on {connect_arguments.get('host')})"
    )
    key = lock_key(state_schema, environment)
    asked = time.monotonic()
    connection = psycopg2.connect(**connect_arguments)
    connection.autocommit = True
    try:

        def locked() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                row = cursor.fetchone()
            return bool(row and row[0])

        def say_waiting() -> None:
            if on_wait:
                on_wait(f"Waiting for the {what}: a run on another machine holds it")

        if not wait_until(locked, timeout_seconds, 0.5, say_waiting):
            raise WarehouseBusyError(
                f"Gave up after {timeout_seconds:.0f} s waiting for the {what}: "
                "another run still holds it"
            )
        if on_wait:
            waited = time.monotonic() - asked
            on_wait(f"Took the {what} at {_now()} after {waited:.1f} s")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            if on_wait:
                on_wait(f"Released the {what} at {_now()}")
    finally:
        connection.close()
