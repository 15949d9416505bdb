"""Small programs the benchmark runs in subprocesses.

Each runs in its own process on purpose: wall time and peak memory are per process, and DuckDB
allows one writer process per file, so nothing here may keep the warehouse open in the harness.

- ``measure OUT -- CMD...``: run CMD, write its wall time, peak RSS and exit code to OUT (JSON).
  Peak RSS comes from ``getrusage(RUSAGE_CHILDREN)`` of this otherwise idle wrapper, so it is the
  largest single process among CMD and its descendants, not their sum. CMD's own peak (for
  ``dagster asset materialize`` with the in-process executor: the run worker, without its SQLMesh
  child) is its ``VmHWM``, read from ``/proc`` until it exits.
- ``load-dagster`` / ``load-sqlmesh``: load the Dagster definitions / a bare SQLMesh Context for
  the project in the cwd and print a JSON line with the phases' durations. ``load-floor`` loads
  Dagster's floor for the same graph (``benchmarks.floor_definitions``) the same way.
- ``drop-interval MODEL``: print MODEL's intervals in the prod environment, then remove the latest
  one, so that the next ``sqlmesh run`` or Dagster materialization has exactly one model to do.
- ``intervals MODEL``: print MODEL's intervals (to check that a side really did the work).
- ``step-times``: the median and 90th percentile of the step durations (STEP_START to its
  STEP_SUCCESS or STEP_FAILURE) of the newest run in ``$DAGSTER_HOME``, from Dagster's event log
  (timestamps to the microsecond, unlike the CLI's log lines), and when the first and the last
  step finished after RUN_START: steps that report as their own model finishes spread over the
  run, steps that wait for the whole SQLMesh run bunch up at its end.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _emit(payload: dict[str, Any]) -> None:
    """Print one JSON line with a marker, so the harness finds it among library output."""
    print("BENCH_RESULT " + json.dumps(payload), flush=True)


def _high_water_mb(pid: int) -> float | None:
    """A live process's peak resident memory (``VmHWM``), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(out: Path, cmd: list[str]) -> int:
    started_at = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    own_peak: list[float] = []

    def watch() -> None:  # VmHWM only grows: the last reading is the peak up to then
        while proc.poll() is None:
            seen = _high_water_mb(proc.pid)
            if seen is not None:
                own_peak[:] = [seen]
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    returncode = proc.wait()
    wall = time.perf_counter() - start
    watcher.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.write_text(
        json.dumps(
            {
                "wall_s": wall,
                "maxrss_mb": usage.ru_maxrss / 1024,
                "command_peak_mb": own_peak[0] if own_peak else None,
                "returncode": returncode,
                "started_at": started_at,
            }
        )
    )
    return returncode


def load_dagster(module: str = "mxm_dagster.definitions") -> None:
    """Load the code location `module` the way a code server does, after importing Dagster.

    Timing the framework import separately shows how much of the difference to a bare Context is
    Dagster's import cost rather than the integration's own work. SQLMesh is not imported here:
    on a cold cache the code location loads the project in a child interpreter (ADR 9).
    """
    t0 = time.perf_counter()
    import dagster  # noqa: F401
    from dagster._core.code_pointer import CodePointer
    from dagster._core.definitions.reconstruct import initialize_repository_def_from_pointer
    from dagster._core.remote_representation.external_data import RepositorySnap

    t1 = time.perf_counter()
    pointer = CodePointer.from_module(module, "defs", None)
    repo = initialize_repository_def_from_pointer(pointer)
    n_assets = len(repo.asset_graph.get_all_asset_keys())
    repo.get_all_jobs()
    t2 = time.perf_counter()
    # What a code server additionally does before the UI can show the graph.
    RepositorySnap.from_def(repo)
    t3 = time.perf_counter()
    _emit(
        {
            "framework_import_s": t1 - t0,
            "load_s": t2 - t1,
            "snapshot_s": t3 - t2,
            "n_assets": n_assets,
        }
    )


def load_sqlmesh() -> None:
    """Build a bare ``sqlmesh.Context`` for the project in the cwd (the baseline)."""
    t0 = time.perf_counter()
    from sqlmesh import Context

    t1 = time.perf_counter()
    context = Context(paths=".")
    n_models = len(context.models)
    context.close()
    t2 = time.perf_counter()
    _emit({"framework_import_s": t1 - t0, "load_s": t2 - t1, "n_models": n_models})


def _prod_snapshot(context: Any, model: str) -> Any:
    env = context.state_sync.get_environment("prod")
    if env is None:
        raise SystemExit("environment 'prod' not found: deploy the project first")
    matches = [s for s in env.snapshots if _plain_name(s.name).endswith(model)]
    if len(matches) != 1:
        raise SystemExit(f"expected one prod snapshot for {model}, found {len(matches)}")
    snapshot_id = matches[0].snapshot_id
    return context.state_sync.get_snapshots([snapshot_id])[snapshot_id]


def _plain_name(fqn: str) -> str:
    return fqn.replace('"', "")


def intervals(model: str, drop_latest: bool) -> None:
    from sqlmesh import Context

    # load=False: only state is needed, so skip parsing every model of a large project.
    context = Context(paths=".", load=False)
    try:
        snapshot = _prod_snapshot(context, model)
        before = [list(i) for i in snapshot.intervals]
        if drop_latest and snapshot.intervals:
            latest = (snapshot, snapshot.intervals[-1])  # forget it, as if it were never filled
            context.state_sync.remove_intervals([latest], remove_shared_versions=True)
        _emit({"model": model, "intervals": before})
    finally:
        context.close()


def step_times() -> None:
    import statistics

    import dagster as dg

    instance = dg.DagsterInstance.get()
    (run,) = instance.get_runs(limit=1)
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    kinds.add(dg.DagsterEventType.RUN_START)
    started: dict[str, float] = {}
    durations: list[float] = []
    done: list[float] = []
    run_start = None
    for record in instance.all_logs(run.run_id, of_type=kinds):
        if record.dagster_event is None:
            continue
        kind = record.dagster_event.event_type
        if kind is dg.DagsterEventType.RUN_START:
            run_start = record.timestamp
        elif record.step_key is None:
            continue
        elif kind is dg.DagsterEventType.STEP_START:
            started[record.step_key] = record.timestamp
        elif record.step_key in started:
            durations.append(record.timestamp - started.pop(record.step_key))
            done.append(record.timestamp)
    durations.sort()
    result: dict[str, Any] = {
        "steps": len(durations),
        "median_step_ms": 1000 * statistics.median(durations) if durations else None,
        "p90_step_ms": 1000 * durations[int(0.9 * (len(durations) - 1))] if durations else None,
    }
    if run_start is not None and done:
        result["first_step_done_after_start_s"] = min(done) - run_start
        result["last_step_done_after_start_s"] = max(done) - run_start
    _emit(result)


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "measure":
        out, sep, *cmd = rest
        if sep != "--" or not cmd:
            raise SystemExit("usage: measure OUT -- CMD...")
        return measure(Path(out), cmd)
    if command == "load-dagster":
        load_dagster()
    elif command == "load-floor":
        load_dagster("benchmarks.floor_definitions")
    elif command == "load-sqlmesh":
        load_sqlmesh()
    elif command == "drop-interval":
        intervals(rest[0], drop_latest=True)
    elif command == "intervals":
        intervals(rest[0], drop_latest=False)
    elif command == "step-times":
        step_times()
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
