"""Compatibility cases: a SQLMesh project run by raw `sqlmesh plan --auto-apply` on one copy and by
the code location's CLI path on a twin copy, and what each left in the warehouse and in SQLMesh's
state (tests/integration/test_compatibility.py)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mxm_dagster.asset_graph import partitions
from mxm_dagster.assets.loader import asset_keys_by_model
from mxm_dagster.child.project import opened_context
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import RunOutcome, dagster_home, environment, run_cli, runs
from tests.support.sqlmesh_state import recorded_intervals

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
    #: with partitions on, its models have several partitions definitions: one run per definition
    mixed_partitions: bool = False


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
class Runs:
    """Several runs on one instance read as one: their records in order (a step runs in one of
    them only, so step statuses do not collide; a later materialization of an asset wins)."""

    outcomes: list[RunOutcome]

    @property
    def instance(self):
        return self.outcomes[0].instance

    @property
    def success(self) -> bool:
        return all(outcome.success for outcome in self.outcomes)

    def records(self) -> list:
        return [record for outcome in self.outcomes for record in outcome.records()]

    events = RunOutcome.events
    step_statuses = RunOutcome.step_statuses
    materializations = RunOutcome.materializations
    checks = RunOutcome.checks


@dataclass
class DagsterSide:
    """The CLI run(s) of the code location on a twin copy, and what they left.

    With mixed partitions definitions there is one run per definition (`ranges`, in order);
    `run` then reads all of them as one and `cli` is the first failing command, else the last."""

    cli: object  # subprocess.CompletedProcess
    run: RunOutcome | Runs | None
    observed: Observed | None
    location: str
    partition_range: str | None
    ranges: list[tuple[list[str], str]] = field(default_factory=list)


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
    with opened_context(SQLMeshProject.at(location(folders))) as context:
        intervals = recorded_intervals(context, "prod")
        audits = {
            name: [(audit.name, bool(audit.skip)) for audit, _ in model.audits_with_args]
            for name, model in context.models.items()
        }
        kinds = {name: str(model.kind.name.value) for name, model in context.models.items()}
        standalone = {name: bool(a.skip) for name, a in context.standalone_audits.items()}
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
    `python -m mxm_dagster.asset_graph.partitions` prints (one run per partitions definition for a
    case with mixed ones)."""
    if partitioned and case.mixed_partitions:
        return dagster_side_per_partitions_def(case, root)
    folders = case.make(root / "project")
    case.prepare(root / "project")
    home = dagster_home(root)
    where = location(folders)
    env = environment(where, home, MXM_SQLMESH_PARTITIONS="on" if partitioned else "off")  # type: ignore[arg-type]
    command = [*MATERIALIZE_ALL, "--select", "*"]
    partition_range = None
    if partitioned:
        printed = run_cli(["python", "-m", "mxm_dagster.asset_graph.partitions"], env)
        assert printed.returncode == 0, printed.stderr[-3000:]
        partition_range = printed.stdout.strip()
        command += ["--partition-range", partition_range]
    done = run_cli(command, env)
    recorded = runs(home)
    run = recorded[-1] if recorded else None
    observed = _observed_after(root, folders, case) if run is not None else None
    return DagsterSide(done, run, observed, where, partition_range)


def _observed_after(root: Path, folders: tuple[Path, ...], case: Case) -> Observed | None:
    """What the Dagster side's runs left; None for runs that wrote no warehouse (the tests then
    say what is missing)."""
    try:
        return observe(root / "project", folders, case.warehouses)
    except Exception:
        return None


def partition_groups(where: str) -> list[tuple[list[str], str]]:
    """(asset keys, `first...last`) per partitions definition of the project, daily ones first,
    then the others by window cron, each key as `--select` spells it; the first group also lists
    every unpartitioned model asset. Daily first: its models read the hourly model and feed the
    unpartitioned marts, so SQLMesh fills the hourly model as their upstream up to the daily
    range's end, and the hourly run fills the rest (ordering hourly first would make SQLMesh fill
    the daily model as the marts' upstream in the first run, and the daily run would find it
    filled)."""
    spec = SQLMeshProject.at(where).load_spec()
    keys = asset_keys_by_model(spec)
    groups: dict[object, list[str]] = {}
    unpartitioned: list[str] = []
    for model in spec.models:
        if model.name not in keys or model.is_external:
            continue
        key = keys[model.name].to_user_string()
        partitions_def = partitions.partitions_def_from_model(model)
        if partitions_def is None:
            unpartitioned.append(key)
        else:
            groups.setdefault(partitions_def, []).append(key)
    order = sorted(groups, key=lambda d: (d.cron_schedule != "0 0 * * *", d.cron_schedule))  # type: ignore[attr-defined]
    result = []
    for index, partitions_def in enumerate(order):
        first = partitions_def.get_first_partition_key()  # type: ignore[attr-defined]
        last = partitions_def.get_last_partition_key()  # type: ignore[attr-defined]
        selected = groups[partitions_def] + (unpartitioned if index == 0 else [])
        result.append((sorted(selected), f"{first}...{last}"))
    return result


def dagster_side_per_partitions_def(case: Case, root: Path) -> DagsterSide:
    """The case materialized with partitions on as a user must when its models have different
    partitions definitions: one `dagster asset materialize --select <group> --partition-range
    <first...last>` per definition (see `partition_groups`)."""
    folders = case.make(root / "project")
    case.prepare(root / "project")
    home = dagster_home(root)
    where = location(folders)
    env = environment(where, home, MXM_SQLMESH_PARTITIONS="on")  # type: ignore[arg-type]
    groups = partition_groups(where)
    done = None
    for selected, partition_range in groups:
        command = [*MATERIALIZE_ALL, "--select", ",".join(selected)]
        done = run_cli([*command, "--partition-range", partition_range], env)
        if done.returncode != 0:
            break
    recorded = runs(home)
    run = Runs(recorded) if recorded else None
    observed = _observed_after(root, folders, case) if run is not None else None
    return DagsterSide(done, run, observed, where, None, groups)


def copy_fixture(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".cache", "logs", "*.duckdb"))
    return dest
