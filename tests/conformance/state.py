"""What a twin holds after a step, read from its warehouse and SQLMesh's state (never from the
code location's log or results file)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
from sqlmesh.core.scheduler import merged_missing_intervals
from sqlmesh.core.snapshot import Snapshot

from tests.conformance.projects import WAREHOUSE
from tests.conformance.sides import sqlmesh_context
from tests.support.sqlmesh_state import interval_writes

Intervals = tuple[tuple[int, int], ...]


@dataclass
class TwinState:
    """Environment views with their sorted rows; per environment and model, the intervals
    SQLMesh recorded; the intervals written into SQLMesh's state since a wall-clock instant."""

    views: dict[str, list[tuple]]
    intervals: dict[str, dict[str, Intervals]]  # environment -> model -> intervals
    written: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # model -> since
    #: model -> identifiers of the snapshots those intervals were written for
    written_ids: dict[str, set[str]] = field(default_factory=dict)
    #: environment -> model -> identifier of the snapshot the environment records
    identifiers: dict[str, dict[str, str]] = field(default_factory=dict)


def _sortable(row: tuple) -> tuple:
    return tuple((value is None, repr(value)) for value in row)


def environment_views(folder: Path) -> dict[str, list[tuple]]:
    """`schema.view` -> its rows, sorted, for every view outside SQLMesh's own schemas (the
    physical layer `sqlmesh__*` is an implementation detail; environments are what users read)."""
    with duckdb.connect(str(folder / WAREHOUSE), read_only=True) as connection:
        names = connection.execute(
            "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
            "AND schema_name NOT LIKE 'sqlmesh%' ORDER BY 1, 2"
        ).fetchall()
        views: dict[str, list[tuple]] = {}
        for schema, view in names:
            try:
                rows = connection.execute(f'SELECT * FROM "{schema}"."{view}"').fetchall()
            except duckdb.Error as exc:  # a view over a table that is gone: report it as such
                rows = [("<error>", type(exc).__name__)]
            views[f"{schema}.{view}"] = sorted(rows, key=_sortable)
    return views


def written_since(
    folder: Path, since_ms: int
) -> tuple[dict[str, list[tuple[int, int]]], dict[str, set[str]]]:
    """Model -> intervals SQLMesh wrote into its state since `since_ms` (wall clock): what it
    evaluated or recorded in the step; and the identifiers of the snapshots written for."""
    written: dict[str, list[tuple[int, int]]] = {}
    identifiers: dict[str, set[str]] = {}
    for write in sorted(interval_writes(folder / WAREHOUSE, since_ms)):
        written.setdefault(write.model, []).append((write.start, write.end))
        identifiers.setdefault(write.model, set()).add(write.identifier)
    return written, identifiers


def environment_snapshots(context, environment: str) -> dict[str, Snapshot]:
    env = context.state_reader.get_environment(environment)
    if env is None:
        return {}
    snapshots = context.state_reader.get_snapshots(env.snapshots).values()
    return {snapshot.name: snapshot for snapshot in snapshots}


def observe(folder: Path, since_ms: int) -> TwinState:
    """The twin's views and SQLMesh's intervals per environment (state only: no project load)."""
    intervals: dict[str, dict[str, Intervals]] = {}
    identifiers: dict[str, dict[str, str]] = {}
    with sqlmesh_context(folder, load=False) as context:
        for env in context.state_reader.get_environments():
            snapshots = {
                name: snapshot
                for name, snapshot in environment_snapshots(context, env.name).items()
                if not snapshot.is_external
            }
            intervals[env.name] = {
                name: tuple((int(a), int(b)) for a, b in snapshot.intervals)
                for name, snapshot in snapshots.items()
            }
            identifiers[env.name] = {n: str(s.identifier) for n, s in snapshots.items()}
    written, written_ids = written_since(folder, since_ms)
    return TwinState(environment_views(folder), intervals, written, written_ids, identifiers)


class SQLMeshTruth:
    """SQLMesh's answers about one twin's state in a step, from one Context opened on the first
    question and closed with `close()` (before the next run: DuckDB has one writer)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stack = contextlib.ExitStack()
        self._context = None

    def _open(self):
        if self._context is None:
            self._context = self._stack.enter_context(sqlmesh_context(self.folder, load=False))
        return self._context

    def close(self) -> None:
        self._stack.close()
        self._context = None

    def missing_as_of(self, environment: str, at: datetime) -> dict[str, Intervals]:
        """Model -> intervals due by its cron as of `at` that SQLMesh has not recorded, computed
        by SQLMesh's scheduler from the environment's snapshots in state."""
        snapshots = environment_snapshots(self._open(), environment)
        missing = merged_missing_intervals(list(snapshots.values()), execution_time=at, end=at)
        return {
            snapshot.name: tuple((int(a), int(b)) for a, b in found)
            for snapshot, found in missing.items()
            if found
        }

    def audit_failures(
        self, environment: str, model: str, start: int, end: int, at: datetime
    ) -> dict[str, int]:
        """Audit name -> rows it finds on `model`'s data over [start, end), run by SQLMesh's
        own evaluator on the environment's snapshot (skipped audits left out)."""
        context = self._open()
        snapshots = environment_snapshots(context, environment)
        results = context.snapshot_evaluator.audit(
            snapshot=snapshots[model],
            start=start,
            end=end,
            execution_time=at,
            snapshots=snapshots,
        )
        return {r.audit.name: int(r.count or 0) for r in results if not r.skipped}
