"""Audits of models on the data the environment already holds, with nothing evaluated.

SQLMesh's scheduler has an audit-only mode (`Scheduler.audit`, what a plan's `AuditOnlyRunStage`
uses for a metadata-only change): it runs a node's audits for intervals as its evaluation would,
reading the table the environment serves, and writes no data and no interval. Its results reach
the console exactly as an evaluation's do (`audit_only=True`), so the recorder hears them.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmesh import Context
from sqlmesh.utils.date import to_datetime


def audit_current_data(
    context: Context,
    environment: str,
    nodes: Collection[str],
    execution_time: int,
    window: tuple[int, int] | None = None,
) -> dict[str, str]:
    """Run the audits of `nodes` (models, and standalone audits by name) on every interval the
    environment recorded for each, from its first recorded start to its last recorded end,
    within `window` ([start, end) epoch ms of a partitioned run) when given (docs/adr/0012).
    Returns, per node not audited, why: not in the environment, or nothing recorded (in the
    window). Failures reach the console; nothing is raised for them."""
    if not nodes:
        return {}
    env = context.state_reader.get_environment(environment)
    if env is None:
        return {n: f"SQLMesh's environment {environment!r} does not exist" for n in nodes}
    scheduler = context.scheduler(environment)
    by_name = scheduler.snapshots_by_name
    not_audited: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}
    for name in sorted(nodes):
        snapshot = by_name.get(name)
        if snapshot is None:
            not_audited[name] = f"SQLMesh's environment {environment!r} holds no version of it"
            continue
        intervals = snapshot.intervals or snapshot.dev_intervals
        if not intervals:
            not_audited[name] = f"SQLMesh recorded no interval of it in {environment!r}"
            continue
        start, end = int(intervals[0][0]), int(intervals[-1][1])
        if window is not None:
            start, end = max(start, window[0]), min(end, window[1])
        if start >= end:
            not_audited[name] = "SQLMesh recorded no interval of it in the run's partitions"
            continue
        spans[name] = (start, end)
    if spans:
        scheduler.audit(
            environment,
            start=min(start for start, _ in spans.values()),
            end=max(end for _, end in spans.values()),
            execution_time=execution_time,
            start_override_per_model={name: to_datetime(a) for name, (a, _) in spans.items()},
            end_override_per_model={name: to_datetime(b) for name, (_, b) in spans.items()},
            selected_snapshots=set(spans),
        )
    return not_audited
