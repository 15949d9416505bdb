"""Compatibility cases: a SQLMesh project run by raw `sqlmesh plan --auto-apply` on one copy and by
the code location's CLI path on a twin copy, and what each left in the warehouse and in SQLMesh's
state (tests/test_compatibility.py)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mxm_dagster.child import sqlmesh_api
from mxm_dagster.child.project import open_context
from mxm_dagster.common.project import SQLMeshProject
from tests.conftest import RunOutcome, dagster_home, environment, run_cli, runs
from tests.sqlmesh_state import recorded_intervals

MATERIALIZE_ALL = ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions"]
#: Time a case needs from its raw twin to the end of its Dagster run, well over what it takes:
#: both must see the same hourly intervals complete, so neither may start in another hour.
_SAME_HOUR_SECONDS = 150


@dataclass(frozen=True)
class Case:
    """A project: how to make its folders under a directory, and where its warehouse files are.

    `make(root)` returns the project folders (several for a multi-repo project), `prepare` writes
    what another system would have put in the warehouse, and `warehouses` are paths relative to
    `root`, the first one SQLMesh's default catalog.
    """

    name: str
    make: Callable[[Path], tuple[Path, ...]]
    warehouses: tuple[str, ...]
    prepare: Callable[[Path], None] = lambda root: None
    #: (model, check) pairs whose audit fails on the case's data, by design.
    failing_checks: frozenset[tuple[str, str]] = frozenset()


@dataclass
class Observed:
    """What a run left: views with their row counts, SQLMesh's recorded intervals, audits."""

    rows_by_view: dict[str, int]
    intervals: dict[str, list[tuple[int, int]]]
    #: model -> (audit name, skipped) of every audit the model carries, in order
    audits: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)
    standalone_audits: dict[str, bool] = field(default_factory=dict)  # name -> skipped
    kinds: dict[str, str] = field(default_factory=dict)


@dataclass
class DagsterSide:
    """One CLI run of the code location on a twin copy, and what it left."""

    cli: object  # subprocess.CompletedProcess
    run: RunOutcome | None
    observed: Observed | None
    location: str
    partition_range: str | None


def location(folders: tuple[Path, ...]) -> str:
    return os.pathsep.join(str(f) for f in folders)


def rows_by_view(root: Path, warehouses: tuple[str, ...]) -> dict[str, int]:
    """`catalog.schema.view` -> row count for every view, the catalogs attached as SQLMesh
    attaches them (a view in one catalog may read a table in another)."""
    first, *others = (root / w for w in warehouses)
    with duckdb.connect(str(first), read_only=True) as connection:
        for other in others:
            connection.execute(f"ATTACH '{other}' AS \"{other.stem}\" (READ_ONLY)")
        names = connection.execute(
            "SELECT database_name, schema_name, view_name FROM duckdb_views() "
            "WHERE NOT internal ORDER BY 1, 2, 3"
        ).fetchall()
        counts: dict[str, int] = {}
        for catalog, schema, view in names:
            row = connection.execute(f'SELECT COUNT(*) FROM "{catalog}"."{schema}"."{view}"')
            counts[f"{catalog}.{schema}.{view}"] = row.fetchone()[0]  # type: ignore[index]
    return counts


def observe(root: Path, folders: tuple[Path, ...], warehouses: tuple[str, ...]) -> Observed:
    """The warehouse's views and SQLMesh's state for prod, read after the run."""
    context = open_context(SQLMeshProject.at(location(folders)))
    try:
        intervals = recorded_intervals(context, "prod")
        audits = {
            name: [(audit.name, bool(audit.skip)) for audit, _ in model.audits_with_args]
            for name, model in context.models.items()
        }
        kinds = {name: str(model.kind.name.value) for name, model in context.models.items()}
        standalone = {name: bool(a.skip) for name, a in context.standalone_audits.items()}
    finally:
        sqlmesh_api.close_context(context)
    return Observed(rows_by_view(root, warehouses), intervals, audits, standalone, kinds)


def wait_for_a_quiet_hour() -> None:
    """Sleep past the next full hour if it is too close: a run on each side of it would see a
    different set of complete hourly intervals."""
    now = datetime.now(UTC)
    left = 3600 - (now.minute * 60 + now.second)
    if left < _SAME_HOUR_SECONDS:
        time.sleep(left + 2)


def current_hour() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H")


def raw_twin(case: Case, root: Path) -> Observed:
    """The case run by SQLMesh's own CLI, as a user of SQLMesh would (relative DuckDB paths
    resolve against the first folder, from where the command runs)."""
    folders = case.make(root)
    case.prepare(root)
    paths = [arg for folder in folders for arg in ("-p", str(folder))]
    done = run_cli(["sqlmesh", *paths, "plan", "--auto-apply", "--no-prompts"], {}, cwd=folders[0])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return observe(root, folders, case.warehouses)


def dagster_side(case: Case, root: Path, partitioned: bool) -> DagsterSide:
    """The case materialized through `dagster asset materialize --select '*'` in a subprocess,
    with time partitions off, or on over the range that
    `python -m mxm_dagster.assets.partitions` prints."""
    folders = case.make(root / "project")
    case.prepare(root / "project")
    home = dagster_home(root)
    where = location(folders)
    env = environment(where, home, MXM_SQLMESH_PARTITIONS="on" if partitioned else "off")  # type: ignore[arg-type]
    command = [*MATERIALIZE_ALL, "--select", "*"]
    partition_range = None
    if partitioned:
        printed = run_cli(["python", "-m", "mxm_dagster.assets.partitions"], env)
        assert printed.returncode == 0, printed.stderr[-3000:]
        partition_range = printed.stdout.strip()
        command += ["--partition-range", partition_range]
    done = run_cli(command, env)
    recorded = runs(home)
    run = recorded[-1] if recorded else None
    observed = None
    if run is not None:
        try:
            observed = observe(root / "project", folders, case.warehouses)
        except Exception:  # a run that wrote no warehouse: the tests say what is missing
            observed = None
    return DagsterSide(done, run, observed, where, partition_range)


def copy_fixture(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".cache", "logs", "*.duckdb"))
    return dest
