"""Reading and editing SQLMesh's state, for tests that judge by SQLMesh's truth rather than by
what the code location logged or wrote in its results file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple

import duckdb
from sqlmesh import Context


def recorded_intervals(context: Context, environment: str) -> dict[str, list[tuple[int, int]]]:
    """Per promoted model: the [start, end) epoch-ms intervals SQLMesh recorded as filled."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return {}
    snapshots = context.state_reader.get_snapshots(env.snapshots).values()
    return {s.name: [(int(a), int(b)) for a, b in s.intervals] for s in snapshots}


def remove_latest_interval(context: Context, environment: str, model: str) -> tuple[int, int]:
    """Forget the newest interval SQLMesh recorded for `model` (as if it were never filled)."""
    env = context.state_reader.get_environment(environment)
    info = next(s for s in (env.snapshots if env else []) if s.name == model)
    snapshot = context.state_reader.get_snapshots([info.snapshot_id])[info.snapshot_id]
    latest = snapshot.intervals[-1]
    context.state_sync.remove_intervals([(snapshot, latest)], remove_shared_versions=True)
    return int(latest[0]), int(latest[1])


class IntervalWrite(NamedTuple):
    """One interval SQLMesh wrote into its state after evaluating (or recording) a model."""

    model: str
    start: int
    end: int
    identifier: str


def interval_writes(database: Path, since_ms: int = 0) -> list[IntervalWrite]:
    """The intervals SQLMesh wrote into the DuckDB state in `database` since `since_ms` (wall
    clock), oldest first: one row per evaluation of an interval. Removals, compactions and
    pending restatements are not writes of data. Read-only, closed straight away."""
    with duckdb.connect(str(database), read_only=True) as connection:
        columns = {
            name
            for (name,) in connection.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'sqlmesh' AND table_name = '_intervals'"
            ).fetchall()
        }
        if not columns:
            return []
        pending = (
            "AND NOT coalesce(is_pending_restatement, false) "
            if "is_pending_restatement" in columns
            else ""
        )
        rows = connection.execute(
            "SELECT name, start_ts, end_ts, identifier FROM sqlmesh._intervals "
            f"WHERE created_ts >= ? AND NOT is_removed AND NOT is_compacted {pending}"
            "ORDER BY created_ts, name, start_ts",
            [since_ms],
        ).fetchall()
    return [IntervalWrite(name, int(a), int(b), str(i)) for name, a, b, i in rows]


def evaluations(database: Path, since_ms: int = 0) -> Counter[str]:
    """Model -> how many intervals SQLMesh wrote for it since `since_ms`."""
    return Counter(write.model for write in interval_writes(database, since_ms))


def prod_planned_once(database: Path) -> bool:
    """Whether SQLMesh applied exactly one plan to `prod`: the environment exists and its plan
    has no previous plan (each plan applied on top records the one it replaced)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "SELECT previous_plan_id FROM sqlmesh._environments WHERE name = 'prod'"
        ).fetchall()
    return rows == [(None,)]


def written_twice(database: Path, since_ms: int = 0) -> list[IntervalWrite]:
    """The intervals SQLMesh wrote more than once since `since_ms`: a model evaluated again for
    what it had already filled (none when SQLMesh ran once for the run)."""
    seen: set[tuple[str, int, int]] = set()
    again: list[IntervalWrite] = []
    for write in interval_writes(database, since_ms):
        if (write.model, write.start, write.end) in seen:
            again.append(write)
        seen.add((write.model, write.start, write.end))
    return again
