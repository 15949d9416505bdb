"""Reading and editing SQLMesh's recorded intervals, for tests that compare with SQLMesh's truth."""

from __future__ import annotations

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
