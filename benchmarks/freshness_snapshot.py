"""What freshness policies cost a process that loads the asset graph (ADR 17).

The webserver, the daemon and other processes deserialize the code location's repository
snapshot, and Dagster's `CronFreshnessPolicy.__new__` checks `lower_bound_delta` against 1,000
cron ticks on every deserialization too. This builds a generated project's definitions with and
without `freshness`, serializes the `RepositorySnap` the code server sends (`defer_snapshots`,
as for the webserver) and its asset node snaps, and times `deserialize_value` of each.

CLI: ``python -m benchmarks.freshness_snapshot PROJECT_DIR [PROJECT_DIR ...] [--repeat R]``
(projects from ``python -m benchmarks.generate_project DEST N``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import deserialize_value, serialize_value

from mxm_dagster import sqlmesh_definitions


def _timed(payload: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        deserialize_value(payload)
        times.append(time.perf_counter() - start)
    return times


def measure(project: str, freshness: bool, repeat: int) -> dict[str, object]:
    defs = sqlmesh_definitions(project, freshness=freshness)
    snap = RepositorySnap.from_def(defs.get_repository_def(), defer_snapshots=True)
    policies = sum(1 for node in snap.asset_nodes if node.freshness_policy is not None)
    repo = _timed(serialize_value(snap), repeat)
    nodes = _timed(serialize_value(list(snap.asset_nodes)), repeat)
    return {
        "project": os.path.basename(os.path.normpath(project)),
        "freshness": freshness,
        "asset_nodes": len(snap.asset_nodes),
        "policies": policies,
        "repository_snap_s": repo,
        "asset_node_snaps_s": nodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    for project in args.projects:
        for freshness in (False, True):
            r = measure(project, freshness, args.repeat)
            print(
                f"{r['project']}: freshness={r['freshness']} asset nodes={r['asset_nodes']} "
                f"policies={r['policies']} | RepositorySnap "
                + " ".join(f"{t:.3f}" for t in r["repository_snap_s"])
                + f" s (median {statistics.median(r['repository_snap_s']):.3f}) | asset node snaps "
                + " ".join(f"{t:.3f}" for t in r["asset_node_snaps_s"])
                + f" s (median {statistics.median(r['asset_node_snaps_s']):.3f})",
                flush=True,
            )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
