"""Projects the code was not written around, each compared with raw SQLMesh on a twin copy.

Every case is materialized through the CLI path (`dagster asset materialize -m
mxm_dagster.definitions --select '*'` in a subprocess) on a fresh warehouse, with time partitions
off, and once more with `MXM_SQLMESH_PARTITIONS=on` over
`python -m mxm_dagster.asset_graph.partitions`'s range; its twin copy is built by `sqlmesh plan
--auto-apply` in the same hour (both use the real clock, so both see the same complete intervals).
The truth is the twin: its environment views and their row counts, the intervals SQLMesh
recorded, the audits its models carry.

The cases:
- `init`: what `sqlmesh init duckdb` generates, made at test time by the installed SQLMesh (with
  partitions on, its daily model starts 4 days ago instead of 2020: see `INIT_RECENT`);
- `kinds`: tests/fixtures/kinds_project, every model kind SQLMesh 0.236 runs on DuckDB (SEED,
  FULL, VIEW, EMBEDDED, INCREMENTAL_BY_TIME_RANGE hourly, daily `@daily` and `0 6 * * *`, monthly,
  INCREMENTAL_BY_UNIQUE_KEY, INCREMENTAL_BY_PARTITION, INCREMENTAL_UNMANAGED, SCD_TYPE_2_BY_TIME,
  SCD_TYPE_2_BY_COLUMN, EXTERNAL), a Python model, a macro, a standalone audit, a `skip` audit, one
  audit used twice on a model (its second use fails, non-blocking), blueprints, a signal that holds
  back the last day and one that is never ready, `start`/`end`, and models in two DuckDB
  catalogs. Measured on 0.236.4: every kind of that list plans and applies on DuckDB, including
  INCREMENTAL_BY_UNIQUE_KEY with `when_matched`. MANAGED does not: "NotImplementedError: Engine
  does not support managed tables: DuckDBEngineAdapter" (it needs Snowflake dynamic tables or
  Databricks). Not in the fixture: CUSTOM (a user-written materialization class, engine-agnostic),
  DBT_CUSTOM (dbt projects only), SCD_TYPE_2 (a legacy alias of SCD_TYPE_2_BY_TIME);
- `multi`: tests/fixtures/multi_repo, two SQLMesh projects (`orders`, `billing`, each with its own
  config.yaml and `project:` name) sharing one state and warehouse, loaded as SQLMesh's
  `Context(paths=[orders, billing])`: MXM_SQLMESH_PROJECT names both, separated by `os.pathsep`.
  Billing also has an EMBEDDED model (a source asset without a step, see ADR 1).
  Measured on 0.236.4: SQLMesh takes connections and state from the first folder's config only;
  loading both folders together works with or without `project:`; without it, a later
  `sqlmesh -p orders plan` removes billing's models from prod ("Removed Models"), with it
  billing's models stay ("No changes to plan").
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from mxm_dagster.asset_graph import partitions
from mxm_dagster.assets.loader import asset_keys_by_model
from mxm_dagster.child.project import configs
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.common.names import safe_name
from mxm_dagster.common.times import to_ms
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import REPO, run_cli
from tests.support.twins import (
    Case,
    DagsterSide,
    Observed,
    Runs,
    copy_fixture,
    current_hour,
    dagster_side,
    raw_twin,
    wait_for_a_quiet_hour,
)

FIXTURES = REPO / "tests" / "fixtures"


def _init_project(root: Path) -> tuple[Path, ...]:
    folder = root / "init"
    folder.mkdir(parents=True)
    done = run_cli(["sqlmesh", "init", "duckdb"], {}, cwd=folder)
    assert done.returncode == 0, done.stderr
    return (folder,)


def _init_project_since_days_ago(root: Path) -> tuple[Path, ...]:
    """The generated project with its daily model starting 4 days ago instead of 2020-01-01:
    with partitions on, Dagster stores events per partition, and 2,528 daily partitions took
    3.5 min here (2 cores shared); four days take the same path through the code."""
    (folder,) = _init_project(root)
    model = folder / "models" / "incremental_model.sql"
    model.write_text(model.read_text().replace("start '2020-01-01'", "start '4 days ago'"))
    return (folder,)


def _kinds_project(root: Path) -> tuple[Path, ...]:
    return (copy_fixture(FIXTURES / "kinds_project", root / "kinds"),)


def _vendor_prices(root: Path) -> None:
    """The EXTERNAL model's table, as another system would have written it."""
    with duckdb.connect(str(root / "kinds" / "shop.duckdb")) as connection:
        connection.execute("CREATE SCHEMA vendor")
        connection.execute(
            "CREATE TABLE vendor.price_list AS SELECT range::INT AS sku, range * 1.5 AS price, "
            "TIMESTAMP '2026-11-01' + INTERVAL (range) HOUR AS changed_at FROM range(4)"
        )


def _multi_repo(root: Path) -> tuple[Path, ...]:
    pair = copy_fixture(FIXTURES / "multi_repo", root / "multi")
    return (pair / "orders", pair / "billing")


INIT = Case("init", _init_project, ("init/db.db",))
INIT_RECENT = Case("init-recent", _init_project_since_days_ago, ("init/db.db",))
KINDS = Case(
    "kinds",
    _kinds_project,
    ("kinds/shop.duckdb", "kinds/ledger.duckdb"),
    prepare=_vendor_prices,
    failing_checks=frozenset({('"shop"."core"."daily_sales"', "accepted_range_2")}),
    mixed_partitions=True,
)
MULTI = Case("multi", _multi_repo, ("multi/shared.duckdb",))

COMBOS = [
    pytest.param(INIT, False, id="init-off"),
    pytest.param(INIT_RECENT, True, id="init-on"),
    pytest.param(KINDS, False, id="kinds-off"),
    # kinds with partitions on: its hourly, daily and monthly models have different partitions
    # definitions, and Dagster runs one per run, so there is no `--select '*'` range
    # (test_mixed_partitions_have_no_common_range); it runs once per definition instead.
    pytest.param(KINDS, True, id="kinds-on"),
    pytest.param(MULTI, False, id="multi-off"),
    pytest.param(MULTI, True, id="multi-on"),
]

_twins: dict[tuple[str, str], Observed] = {}
_sides: dict[tuple[str, bool], tuple[DagsterSide, Observed]] = {}


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory):
    """(Dagster side, raw twin) of a case: each run once per module, one twin per case and hour."""

    def get(case: Case, partitioned: bool) -> tuple[DagsterSide, Observed]:
        key = (case.name, partitioned)
        if key not in _sides:
            wait_for_a_quiet_hour()
            twin_key = (case.name, current_hour())
            if twin_key not in _twins:
                _twins[twin_key] = raw_twin(case, tmp_path_factory.mktemp(f"{case.name}-raw"))
            mode = "on" if partitioned else "off"
            side = dagster_side(case, tmp_path_factory.mktemp(f"{case.name}-{mode}"), partitioned)
            _sides[key] = (side, _twins[twin_key])
        return _sides[key]

    return get


def _due_by_range_end(side: DagsterSide, twin: Observed) -> dict[str, list[tuple[int, int]]]:
    """The twin's intervals as the Dagster side must record them.

    One CLI run over the whole range: the twin's. One run per partitions definition (kinds-on):
    a prod range run plans as of its range's end (ADR 5), so a model selected in it is filled
    only up to the last interval its cron made due by then, where the twin, planned at the
    clock, also has the later ones. In kinds the daily range ends today at 00:00, so the
    `0 6 * * *` model lacks yesterday (due at 06:00 today); `@daily` ones do not (due at 00:00).
    Its models are filled only by their own group's run (no later run reads them)."""
    if not side.ranges:
        return twin.intervals
    expected = dict(twin.intervals)
    for model in SQLMeshProject.at(side.location).load_spec().models:
        partitions_def = partitions.partitions_def_from_model(model)
        if partitions_def is None or model.is_external or model.name not in expected:
            continue
        windows = [
            partitions_def.time_window_for_partition_key(key)
            for key in partitions_def.get_partition_keys()
        ]
        range_end = windows[-1].end
        due = [
            w.end for w in windows if partitions.is_due(model.cron, model.cron_tz, w.end, range_end)
        ]  # type: ignore[arg-type]
        due_end = to_ms(max(due)) if due else to_ms(windows[0].start)
        expected[model.name] = [
            (a, min(b, due_end)) for a, b in expected[model.name] if a < due_end
        ]
    return expected


#: Views with one row per day of their model's intervals, the only ones whose rows the range ends
#: change in kinds-on (asserted, so a change in the fixture shows up here).
_ONE_ROW_PER_DAY = {'"shop"."core"."morning_report"': "shop.core.morning_report"}
_DAY_MS = 86_400_000


def _expected_rows(side: DagsterSide, twin: Observed) -> dict[str, int]:
    expected_intervals = _due_by_range_end(side, twin)
    clipped = {m for m, found in twin.intervals.items() if expected_intervals.get(m) != found}
    assert clipped <= set(_ONE_ROW_PER_DAY), clipped
    rows = dict(twin.rows_by_view)
    for model in clipped:
        days = sum(b - a for a, b in twin.intervals[model]) // _DAY_MS
        left = sum(b - a for a, b in expected_intervals[model]) // _DAY_MS
        rows[_ONE_ROW_PER_DAY[model]] -= days - left
    return rows


def _ran(side: DagsterSide) -> Observed:
    cli: subprocess.CompletedProcess = side.cli  # type: ignore[assignment]
    assert side.run is not None and side.observed is not None, cli.stderr[-4000:]
    return side.observed


#: Kinds SQLMesh never evaluates (another system's table; a model inlined into its readers):
#: their assets are sources without a step.
_WITHOUT_STEP = {"EXTERNAL", "EMBEDDED"}


def _models_with_steps(twin: Observed) -> list[str]:
    return sorted(name for name, kind in twin.kinds.items() if kind not in _WITHOUT_STEP)


def _outcomes(side: DagsterSide) -> dict[str, str]:
    """model -> `sqlmesh/outcome` of its materialization in the run."""
    assert side.run is not None
    return {
        meta["sqlmesh/model"]: meta["sqlmesh/outcome"]
        for meta in side.run.materializations().values()
    }


@pytest.mark.parametrize(("case", "partitioned"), COMBOS)
def test_the_cli_run_succeeds_with_every_step(compared, case: Case, partitioned: bool) -> None:
    """Every step succeeds, but those Dagster skips below a model SQLMesh left `not_filled`
    (its step yields no materialization, ADR 7)."""
    side, twin = compared(case, partitioned)
    _ran(side)
    assert side.cli.returncode == 0, side.cli.stderr[-4000:]  # type: ignore[attr-defined]
    statuses = side.run.step_statuses()  # type: ignore[union-attr]
    assert len(statuses) == len(_models_with_steps(twin))
    not_filled = {m for m, o in _outcomes(side).items() if o == "not_filled"}
    spec = SQLMeshProject.at(side.location).load_spec()
    below = {child for model in not_filled for child in spec.downstream(model)}
    keys = asset_keys_by_model(spec)
    steps_below = {"__".join(keys[m].path) for m in below if m in keys}
    assert {step for step, status in statuses.items() if status != "STEP_SUCCESS"} == {
        step for step in steps_below if step in statuses
    }, statuses
    assert {statuses[step] for step in steps_below if step in statuses} <= {"STEP_SKIPPED"}


@pytest.mark.parametrize(("case", "partitioned"), COMBOS)
def test_the_environment_has_raw_sqlmeshs_views_and_row_counts(
    compared, case: Case, partitioned: bool
) -> None:
    side, twin = compared(case, partitioned)
    assert _ran(side).rows_by_view == _expected_rows(side, twin)


@pytest.mark.parametrize(("case", "partitioned"), COMBOS)
def test_sqlmesh_recorded_the_intervals_raw_sqlmesh_records(
    compared, case: Case, partitioned: bool
) -> None:
    side, twin = compared(case, partitioned)
    assert _ran(side).intervals == _due_by_range_end(side, twin)


@pytest.mark.parametrize(("case", "partitioned"), COMBOS)
def test_every_model_is_reported_with_what_sqlmesh_did(
    compared, case: Case, partitioned: bool
) -> None:
    """Fresh warehouse: a model SQLMesh filled is `evaluated`; a model SQLMesh left without any
    interval (a signal never ready, an EMBEDDED model that has no table) is not claimed."""
    side, twin = compared(case, partitioned)
    _ran(side)
    outcomes = _outcomes(side)
    expected = {m: "evaluated" for m in _models_with_steps(twin) if twin.intervals.get(m)}
    claimed = {m: o for m, o in outcomes.items() if o in {"evaluated", "up_to_date", "audited"}}
    assert claimed == expected


@pytest.mark.parametrize(("case", "partitioned"), COMBOS)
def test_one_check_result_per_audit_that_ran(compared, case: Case, partitioned: bool) -> None:
    """Audits run on the models SQLMesh evaluated, except `skip` ones; a standalone audit runs on
    its own (wherever its check is attached). Passed unless the case's data fails it."""
    side, twin = compared(case, partitioned)
    _ran(side)
    assert side.run is not None
    # One result per audit in each run; with partitions on, a model SQLMesh fills in two of the
    # runs (as upstream of the daily group, then in its own) has its audits run in both
    for run in side.run.outcomes if isinstance(side.run, Runs) else [side.run]:
        evaluated = [e.event_specific_data for e in run.events("ASSET_CHECK_EVALUATION")]
        per_asset = Counter((d.asset_key.to_user_string(), d.check_name) for d in evaluated)
        assert max(per_asset.values(), default=1) == 1, per_asset
    latest = {
        (e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name): (
            e.event_specific_data
        )
        for e in side.run.events("ASSET_CHECK_EVALUATION")
    }
    evaluations = list(latest.values())  # a later run's result of the same check wins
    keys = {meta["sqlmesh/model"]: key for key, meta in side.run.materializations().items()}
    model_by_key = {key: model for model, key in keys.items()}
    ran = {m for m in _models_with_steps(twin) if twin.intervals.get(m)}
    audits_run = {
        model: sum(1 for _, skipped in twin.audits.get(model, []) if not skipped) for model in ran
    }
    standalone_run = [
        name
        for name, skipped in twin.standalone_audits.items()
        if not skipped and twin.intervals.get(name)
    ]
    standalone_checks = [
        d for d in evaluations if any(safe_name(n) in d.check_name for n in twin.standalone_audits)
    ]
    reported = Counter(
        model_by_key.get(d.asset_key.to_user_string())
        for d in evaluations
        if d not in standalone_checks
    )
    assert {model: reported.get(model, 0) for model in ran} == audits_run
    assert len(standalone_checks) == len(standalone_run)
    assert len(evaluations) == sum(audits_run.values()) + len(standalone_run)
    failed = {
        (model_by_key.get(data.asset_key.to_user_string(), ""), data.check_name)
        for data in evaluations
        if not data.passed
    }
    assert failed == set(case.failing_checks)


@pytest.mark.parametrize(
    ("case", "partitioned"),
    [c for c in COMBOS if c.values[1]],  # partitions on
)
def test_a_partition_is_materialized_only_if_sqlmesh_recorded_its_interval(
    compared, case: Case, partitioned: bool
) -> None:
    side, twin = compared(case, partitioned)
    _ran(side)
    assert side.run is not None
    spec = SQLMeshProject.at(side.location).load_spec()
    keys = asset_keys_by_model(spec)
    intervals = _due_by_range_end(side, twin)
    checked = 0
    for model in spec.models:
        partitions_def = partitions.partitions_def_from_model(model)
        if partitions_def is None or model.is_external:
            continue
        expected = partitions.keys_for_intervals(partitions_def, intervals.get(model.name, []))
        materialized = side.run.instance.get_materialized_partitions(keys[model.name])
        assert sorted(materialized) == expected, model.name
        checked += 1
    assert checked, "the case has time-partitioned models"


# --------------------------------------------------------------------------- multi-repo project


def test_mxm_sqlmesh_project_names_several_folders_separated_by_pathsep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders, billing = _multi_repo(tmp_path)
    monkeypatch.setenv("MXM_SQLMESH_PROJECT", f"{orders}{os.pathsep}{billing}{os.pathsep}")
    project = SQLMeshProject.from_env()
    assert project.paths == (orders, billing)
    assert SQLMeshProject.at(project.location) == project


def test_a_multi_repo_project_keeps_its_caches_in_the_first_folder_and_hashes_every_folder(
    tmp_path: Path,
) -> None:
    orders, billing = _multi_repo(tmp_path)
    project = SQLMeshProject.at(f"{orders}{os.pathsep}{billing}")
    before = project.fingerprint()
    assert project.spec_file().is_relative_to(orders / ".cache")
    (billing / "models" / "invoices.sql").write_text("MODEL (name finance.invoices); SELECT 1")
    assert project.fingerprint() != before
    assert SQLMeshProject.at(str(orders)).fingerprint() != project.fingerprint()


def test_duckdb_paths_mean_what_they_mean_in_the_first_folder(tmp_path: Path) -> None:
    """SQLMesh runs in the first folder, as `sqlmesh -p orders -p billing` run there: each
    folder's config is SQLMesh's as written, and the warehouse is the first folder's file."""
    orders, billing = _multi_repo(tmp_path)
    (billing / "config.yaml").write_text(
        (billing / "config.yaml").read_text().replace("../shared.duckdb", "billing.duckdb")
    )
    project = SQLMeshProject.at(f"{orders}{os.pathsep}{billing}")
    by_folder = configs(project)
    assert by_folder[orders].get_connection("local").database == "../shared.duckdb"
    assert by_folder[billing].get_connection("local").database == "billing.duckdb"
    assert project.load_spec().warehouse == str(tmp_path / "multi" / "shared.duckdb")


def test_a_missing_second_folder_is_named(tmp_path: Path) -> None:
    orders, _ = _multi_repo(tmp_path)
    missing = tmp_path / "nowhere"
    with pytest.raises(ProjectLoadError, match=str(missing)):
        SQLMeshProject.at(f"{orders}{os.pathsep}{missing}").load_spec()


def test_the_warehouse_of_duckdb_catalogs_is_the_first_catalogs_file(tmp_path: Path) -> None:
    (kinds,) = _kinds_project(tmp_path)
    assert SQLMeshProject(kinds).load_spec().warehouse == str(kinds / "shop.duckdb")


def test_mixed_partitions_have_no_common_range(tmp_path: Path) -> None:
    """With partitions on, the kinds project's hourly, daily and monthly models have different
    partitions definitions; one Dagster run covers one, so the range helper says so and names
    the groups instead of printing a range the CLI would refuse."""
    (folder,) = _kinds_project(tmp_path)
    done = run_cli(
        ["python", "-m", "mxm_dagster.asset_graph.partitions"],
        {"MXM_SQLMESH_PROJECT": str(folder), "MXM_SQLMESH_PARTITIONS": "on"},
    )
    assert done.returncode != 0
    assert "different partitions" in done.stderr
    assert "0 * * * *" in done.stderr and "0 0 * * *" in done.stderr, done.stderr
