"""The ``postgres`` scenario: is SQLMesh's parallelism kept through the code location?

A wide project (``generate_wide``: N independent models of about S seconds each, the server
sleeping) on a PostgreSQL warehouse gateway, with ``concurrent_tasks`` 4 and 1: raw ``sqlmesh plan
--auto-apply`` against ``dagster asset materialize --select '*'`` and Dagster's floor for the same
graph. Each run gets a fresh database (warehouse and SQLMesh's state) on the server at
``$BENCH_PG_HOST:$BENCH_PG_PORT`` (default 127.0.0.1:5432, user postgres), dropped afterwards.
From the Dagster side's event log: when the first and the last step finished after RUN_START,
so a run whose steps report as their own model finishes (spread over the run) is told apart from
one whose steps all wait for SQLMesh's whole run.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.generate_project import (
    FLOOR_MODELS_ENV,
    FLOOR_SHAPE_ENV,
    PG_DATABASE_ENV,
    WIDE_SCHEMA,
    generate_wide,
)
from benchmarks.harness import (
    FLOOR_MODULE,
    Harness,
    Sample,
    dagster_materialize_cmd,
    median_ratio,
    raw_plan_cmd,
    run_sides,
    side_phases,
    step_times,
    summarise,
    tail,
)

SIDES = ["raw", "dagster", "floor"]


def _connect(dbname: str = "postgres") -> Any:
    import psycopg2

    connection = psycopg2.connect(
        host=os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("BENCH_PG_PORT", "5432")),
        user=os.environ.get("BENCH_PG_USER", "postgres"),
        password=os.environ.get("BENCH_PG_PASSWORD", ""),
        dbname=dbname,
    )
    connection.autocommit = True
    return connection


def _admin(sql: str) -> None:
    connection = _connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def _views(dbname: str) -> int:
    """The wide models' views in the run's database: the proof that a side built every model."""
    connection = _connect(dbname)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.views WHERE table_schema = %s",
                (WIDE_SCHEMA,),
            )
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def _template(h: Harness, n: int, seconds: float, concurrent_tasks: int) -> Path:
    path = h.workdir / f"template_wide_{n}_c{concurrent_tasks}"
    if not path.exists():
        generate_wide(path, n, seconds, concurrent_tasks)
    return path


def _wide_side(
    h: Harness, side: str, n: int, seconds: float, concurrent_tasks: int, repeat: int
) -> Sample:
    label = f"postgres_c{concurrent_tasks}_{side}_n{n}_r{repeat}"
    project = h.workdir / label
    shutil.copytree(_template(h, n, seconds, concurrent_tasks), project)
    database = f"mxm_bench_{secrets.token_hex(4)}"
    home = h.fresh_dagster_home(side, initialised=True)
    if side == "raw":
        cmd, env = raw_plan_cmd(), h.env()
    elif side == "floor":
        cmd, env = dagster_materialize_cmd("*", FLOOR_MODULE), h.env(dagster_home=home)
        env[FLOOR_MODELS_ENV], env[FLOOR_SHAPE_ENV] = str(n), "wide"
    else:
        cmd, env = dagster_materialize_cmd("*"), h.env(project, home)
    env[PG_DATABASE_ENV] = database
    _admin(f'CREATE DATABASE "{database}"')
    try:
        measured, output, log = h.run(label, cmd, project, env)
        built = _views(database) if side != "floor" else output.count(" - STEP_SUCCESS - ")
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(project, ignore_errors=True)
    ok = measured["returncode"] == 0
    error = None if ok else f"exit {measured['returncode']}: {tail(output)}"
    if ok and built != n:
        ok, error = False, f"exit 0 but {built} of {n} models built"
    extra = side_phases(side, output, measured)
    if side != "raw" and ok:
        extra.update(step_times(h, env))
    return Sample(
        side, repeat, measured["wall_s"], measured["maxrss_mb"], ok, str(log), error, extra
    )


def scenario_postgres(
    h: Harness, n: int, seconds: float, concurrent_tasks: int, repeats: int
) -> dict[str, Any]:
    """One result per ``concurrent_tasks``: the three sides' medians and the steps' spread."""
    samples = run_sides(
        h,
        f"postgres c{concurrent_tasks}",
        n,
        SIDES,
        repeats,
        lambda side, r: _wide_side(h, side, n, seconds, concurrent_tasks, r),
    )
    summary = summarise(samples, SIDES)
    ours, raw = summary["dagster"]["median_s"], summary["raw"]["median_s"]
    return {
        "scenario": "postgres",
        "n_models": n,
        "model_seconds": seconds,
        "concurrent_tasks": concurrent_tasks,
        "repeats": repeats,
        "sides": summary,
        "ratio": median_ratio(summary, "dagster", "raw"),
        "floor_ratio": median_ratio(summary, "floor", "raw"),
        "ratio_to_floor": median_ratio(summary, "dagster", "floor"),
        # "within the floor's overhead": compare with the floor's median
        "ours_minus_raw_s": ours - raw if ours is not None and raw is not None else None,
        "samples": [asdict(s) for s in samples],
    }
