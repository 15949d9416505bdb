"""The plan preview job (ADR 18) against raw SQLMesh's own plan on a twin copy.

A small project of its own, deployed on two copies by raw `Context.plan`, then edited alike with
one change of each kind: breaking (with an indirect change below it), non-breaking (with one
below it), forward-only, metadata-only, and a destructive change to a forward-only model that
SQLMesh refuses. The preview runs as a real Dagster job on one copy; raw `Context.plan(...)` on
the other says what SQLMesh makes of the same edits. After the preview, SQLMesh's state and the
warehouse hold exactly what they held before.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from sqlmesh.utils.errors import PlanError

from mxm_dagster import SQLMeshProject, sqlmesh_definitions
from mxm_dagster.assets.preview import SUMMARY_METADATA_KEY
from mxm_dagster.child.project import opened_context
from mxm_dagster.common.times import iso_from_ms
from tests.conftest import DUCKDB_CONFIG

DEPLOYED_AT = "2026-11-05 00:00:00"
PREVIEWED_AT = "2026-11-08 00:00:00"
DAILY = "kind INCREMENTAL_BY_TIME_RANGE (time_column day{extra}),\n  cron '@daily',\n"
DAYS = (
    "FROM range(@start_ds::TIMESTAMP, @end_ds::TIMESTAMP + INTERVAL 1 DAY, INTERVAL 1 DAY) AS t(d)"
)
MODELS = {
    "orders": f"MODEL (\n  name shop.orders,\n  {DAILY.format(extra='')}  start '2026-11-01'\n);\n"
    f"SELECT CAST(t.d AS DATE) AS day, 10 AS amount {DAYS}",
    "order_totals": "MODEL (name shop.order_totals, kind FULL, start '2026-11-01');\n"
    "SELECT SUM(amount) AS total FROM shop.orders",
    "customers": "MODEL (name shop.customers, kind FULL, start '2026-11-01');\n"
    "SELECT 1 AS id, 'ann' AS name",
    "customer_count": "MODEL (name shop.customer_count, kind FULL, start '2026-11-01');\n"
    "SELECT COUNT(*) AS customers FROM shop.customers",
    "events": "MODEL (\n  name shop.events,\n  "
    f"{DAILY.format(extra=', forward_only true')}  start '2026-11-01'\n);\n"
    f"SELECT CAST(t.d AS DATE) AS day, 1 AS n {DAYS}",
    "regions": "MODEL (name shop.regions, kind FULL, start '2026-11-01', description 'Regions');\n"
    "SELECT 'north' AS region",
    "ledger": "MODEL (\n  name shop.ledger,\n  kind INCREMENTAL_BY_UNIQUE_KEY (unique_key id, "
    "forward_only true),\n  start '2026-11-01'\n);\nSELECT 1 AS id, 10 AS a, 100 AS b",
}
#: one change of each kind: (model file, old text, new text)
EDITS = [
    ("orders", "10 AS amount", "20 AS amount"),  # breaking; order_totals indirectly
    ("customers", "'ann' AS name", "'ann' AS name, 'oslo' AS city"),  # non-breaking
    ("events", "1 AS n", "2 AS n"),  # forward-only
    ("regions", "description 'Regions'", "description 'Regions', owner 'sales'"),  # metadata
    ("ledger", ", 100 AS b", ""),  # destructive to a forward-only model: refused
]
LEDGER = '"warehouse"."shop"."ledger"'


def write_project(folder: Path) -> Path:
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(DUCKDB_CONFIG)
    for name, text in MODELS.items():
        (folder / "models" / f"{name}.sql").write_text(text)
    return folder


def edit(folder: Path) -> None:
    for name, old, new in EDITS:
        path = folder / "models" / f"{name}.sql"
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))


def deploy(folder: Path) -> None:
    with opened_context(SQLMeshProject(path=folder)) as context:
        context.plan("prod", execution_time=DEPLOYED_AT, run=True, auto_apply=True, no_prompts=True)


def everything(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table and view in the DuckDB file: the warehouse and SQLMesh's state
    (snapshots, environments, intervals, versions) alike."""
    with duckdb.connect(str(database), read_only=True) as connection:
        names = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{name}": sorted(
                connection.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall(), key=repr
            )
            for schema, name in names
        }


def raw_plan(folder: Path, **options: Any) -> tuple[dict[str, tuple[str, bool]], dict[str, Any]]:
    """What raw SQLMesh's `Context.plan` says, unapplied: each changed model's category and
    forward-only flag, and each model's missing intervals."""
    with opened_context(SQLMeshProject(path=folder)) as context:
        plan = context.plan(
            "prod",
            execution_time=PREVIEWED_AT,
            run=True,
            no_prompts=True,
            auto_apply=False,
            **options,
        )
        snapshots = plan.context_diff.snapshots
        changed = set(plan.directly_modified) | set(plan.metadata_updated)
        changed |= {c for children in plan.indirectly_modified.values() for c in children}
        categories = {
            s_id.name: (snapshots[s_id].change_category.name, snapshots[s_id].is_forward_only)
            for s_id in changed
        }
        intervals = {
            m.snapshot_id.name: sorted((int(a), int(b)) for a, b in m.intervals)
            for m in plan.missing_intervals
        }
    return categories, intervals


def iso_spans(intervals: list[tuple[int, int]]) -> list[list[str]]:
    """Contiguous intervals joined, as the observation's `sqlmesh/fill_spans` shows them."""
    joined: list[list[int]] = []
    for start, end in intervals:
        if joined and start == joined[-1][1]:
            joined[-1][1] = end
        else:
            joined.append([start, end])
    return [[iso_from_ms(a), iso_from_ms(b)] for a, b in joined]


def observations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    found = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "ASSET_OBSERVATION":
            observation = event.event_specific_data.asset_observation
            metadata = {k: v.value for k, v in observation.metadata.items()}
            found[metadata["sqlmesh/model"]] = metadata
    return found


def run_preview(
    folder: Path, instance: dg.DagsterInstance, run_config: dict[str, Any] | None = None
) -> dg.ExecuteInProcessResult:
    defs = sqlmesh_definitions(SQLMeshProject(path=folder))
    job = defs.resolve_job_def("sqlmesh_plan_preview")
    config = {"resources": {"sqlmesh": {"config": {"execution_time": PREVIEWED_AT}}}}
    for section, value in (run_config or {}).items():
        config.setdefault(section, {}).update(value)
    return job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)


def materialize(
    folder: Path, instance: dg.DagsterInstance, config: dict[str, Any], selection: list[str]
) -> dg.ExecuteInProcessResult:
    """A real run of the selected model assets with the resource config `config`."""
    defs = sqlmesh_definitions(SQLMeshProject(path=folder))
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey.from_user_string(key) for key in selection] or None,
        run_config={"resources": {"sqlmesh": {"config": config}}},
        instance=instance,
        raise_on_error=False,
    )


def evaluated_and_restated(
    instance: dg.DagsterInstance, run_id: str
) -> tuple[dict[str, list[list[str]]], set[str]]:
    """Per model the run evaluated, its evaluated intervals joined (over its partition records
    too); the models it restated."""
    evaluated: dict[str, list[list[str]]] = {}
    restated = set()
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            if metadata["sqlmesh/outcome"] == "evaluated":
                found = evaluated.setdefault(metadata["sqlmesh/model"], [])
                found.extend(i for i in metadata["sqlmesh/intervals"] if i not in found)
            if metadata["sqlmesh/restated"]:
                restated.add(metadata["sqlmesh/model"])
    return {m: joined(i) for m, i in evaluated.items()}, restated


def shown_fills(seen: dict[str, dict[str, Any]]) -> dict[str, list[list[str]]]:
    return {m: o["sqlmesh/fill_spans"] for m, o in seen.items() if o["sqlmesh/interval_count"]}


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    ours = write_project(tmp_path / "ours")
    deploy(ours)
    raw = tmp_path / "raw"
    shutil.copytree(ours, raw, ignore=shutil.ignore_patterns(".cache", "logs"))
    for folder in (ours, raw):
        edit(folder)
    return ours, raw


def test_the_preview_shows_sqlmesh_s_own_plan_and_writes_nothing(twins: tuple[Path, Path]) -> None:
    ours, raw = twins
    database = ours / "warehouse.duckdb"
    before = everything(database)
    instance = dg.DagsterInstance.ephemeral()

    result = run_preview(ours, instance)

    assert result.success
    assert everything(database) == before  # no snapshot, environment, interval or row written

    with pytest.raises(PlanError):  # raw SQLMesh refuses the run's plan for the dropped column
        raw_plan(raw)
    categories, intervals = raw_plan(raw, allow_destructive_models=[LEDGER])
    seen = observations(instance, result.run_id)
    assert {
        m: (o["sqlmesh/change_category"], o["sqlmesh/forward_only"])
        for m, o in seen.items()
        if o["sqlmesh/change_category"]
    } == categories
    fills = {
        m: (o["sqlmesh/interval_count"], o["sqlmesh/fill_spans"])
        for m, o in seen.items()
        if o["sqlmesh/interval_count"]
    }
    assert fills == {m: (len(i), iso_spans(i)) for m, i in intervals.items()}
    changes = {m.split(".")[-1].strip('"'): o["sqlmesh/change"] for m, o in seen.items()}
    assert changes == {
        "orders": "breaking",
        "order_totals": "indirect breaking",
        "customers": "non-breaking",
        "customer_count": "indirect non-breaking",
        "events": "forward-only",
        "regions": "metadata",
        "ledger": "forward-only",
    }
    assert [m for m, o in seen.items() if o["sqlmesh/destructive_refused"]] == [LEDGER]
    assert "b" in seen[LEDGER]["sqlmesh/destructive_change"]
    assert "+  20 AS amount" in seen['"warehouse"."shop"."orders"']["sqlmesh/diff"]
    assert "+  owner sales," in seen['"warehouse"."shop"."regions"']["sqlmesh/diff"]
    assert seen['"warehouse"."shop"."order_totals"']["sqlmesh/modified_by"] == (
        '"warehouse"."shop"."orders"'
    )

    events = [r.dagster_event for r in instance.all_logs(result.run_id) if r.dagster_event]
    kinds = {e.event_type_value for e in events}
    assert not kinds & {"ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"}
    (output,) = [e for e in events if e.event_type_value == "STEP_OUTPUT"]
    summary = output.event_specific_data.metadata[SUMMARY_METADATA_KEY].value
    assert "A run would be refused" in summary and LEDGER in summary

    # the rest of the plan is shown as it would be once the change is allowed: a run that
    # allows it evaluates exactly what the preview showed
    config = {"execution_time": PREVIEWED_AT, "allow_destructive": [LEDGER]}
    run = materialize(ours, instance, config, [])
    assert run.success
    evaluated, _ = evaluated_and_restated(instance, run.run_id)
    assert evaluated == shown_fills(seen)


def joined(iso_intervals: list[list[str]]) -> list[list[str]]:
    """A run's recorded intervals (`sqlmesh/intervals`, per batch) joined where contiguous."""
    spans: list[list[str]] = []
    for start, end in sorted(iso_intervals):
        if spans and start == spans[-1][1]:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return spans


@pytest.mark.parametrize("environment", ["prod", "dev"])
def test_a_restating_run_of_a_selection_does_what_the_preview_showed(
    twins: tuple[Path, Path], environment: str
) -> None:
    """A selection restated, with the destructive change allowed: in prod the intervals the
    preview shows per model (the models below the restated ones included) are those the run
    then evaluates, and the models it shows restated are those the run restates. In dev, as of
    a past time, SQLMesh fails the plan before doing anything (its default start, yesterday,
    is after the end): the preview says so, with the error the run then fails with."""
    ours, _ = twins
    database = ours / "warehouse.duckdb"
    selection = ["shop/orders", "shop/regions", "shop/ledger"]
    config = {
        "environment": environment,
        "execution_time": PREVIEWED_AT,
        "allow_destructive": [LEDGER],
        "restate": True,
    }
    before = everything(database)
    instance = dg.DagsterInstance.ephemeral()
    previewed = run_preview(
        ours,
        instance,
        {
            "resources": {"sqlmesh": {"config": config}},
            "ops": {"sqlmesh_build_plan": {"config": {"assets": selection}}},
        },
    )
    assert previewed.success
    assert everything(database) == before
    seen = observations(instance, previewed.run_id)
    (output,) = [
        r.dagster_event
        for r in instance.all_logs(previewed.run_id)
        if r.dagster_event and r.dagster_event.event_type_value == "STEP_OUTPUT"
    ]
    error = output.event_specific_data.metadata["sqlmesh/error"].value

    run = materialize(ours, instance, config, selection)
    if environment == "dev":
        assert error.startswith("ValueError: Start date / time") and not seen
        assert not run.success
        failures = [
            str(r.dagster_event.event_specific_data.error)
            for r in instance.all_logs(run.run_id)
            if r.dagster_event and r.dagster_event.event_type_value == "STEP_FAILURE"
        ]
        assert failures and all(error in failure for failure in failures)
        return
    assert error == "" and run.success
    evaluated, restated = evaluated_and_restated(instance, run.run_id)
    assert evaluated == shown_fills(seen)
    assert restated == {m for m, o in seen.items() if o["sqlmesh/restated"]}
    below = '"warehouse"."shop"."order_totals"'  # not selected: below a restated model
    assert below in restated and below not in {m.replace("/", ".") for m in selection}
    # a restating plan works from SQLMesh's state: the edits are not part of it
    assert not any(o["sqlmesh/change_category"] for o in seen.values())


def test_a_failing_unit_test_the_run_asks_for_is_what_the_preview_says_would_stop_it(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path / "ours")
    (project / "tests").mkdir()
    (project / "tests" / "test_customer_count.yaml").write_text(
        "test_customer_count:\n  model: shop.customer_count\n  inputs:\n    shop.customers:\n"
        "      rows:\n        - id: 1\n          name: ann\n"
        "  outputs:\n    query:\n      rows:\n        - customers: 5\n"
    )
    instance = dg.DagsterInstance.ephemeral()
    config = {"resources": {"sqlmesh": {"config": {"run_unit_tests": True}}}}
    result = run_preview(project, instance, config)
    assert result.success and not observations(instance, result.run_id)
    (output,) = [
        r.dagster_event
        for r in instance.all_logs(result.run_id)
        if r.dagster_event and r.dagster_event.event_type_value == "STEP_OUTPUT"
    ]
    error = output.event_specific_data.metadata["sqlmesh/error"].value
    assert "1 of 1 tests failed" in error and "test_customer_count" in error


def test_a_partition_range_restated_is_the_window_the_preview_showed(
    twins: tuple[Path, Path],
) -> None:
    """The preview's `start`/`end` are a partitioned run's window: restating it shows the days
    of the range (and the model below), which a run over that partition range then restates."""
    ours, _ = twins
    config = {"execution_time": PREVIEWED_AT, "restate": True}
    instance = dg.DagsterInstance.ephemeral()
    window = {"assets": ["shop/orders"], "start": "2026-11-02", "end": "2026-11-04"}
    previewed = run_preview(
        ours,
        instance,
        {
            "resources": {"sqlmesh": {"config": config}},
            "ops": {"sqlmesh_build_plan": {"config": window}},
        },
    )
    assert previewed.success
    seen = observations(instance, previewed.run_id)
    orders = '"warehouse"."shop"."orders"'
    assert seen[orders]["sqlmesh/fill_spans"] == [
        ["2026-11-02T00:00:00+00:00", "2026-11-04T00:00:00+00:00"]
    ]

    defs = sqlmesh_definitions(SQLMeshProject(path=ours), partitions=True)
    run = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey(["shop", "orders"])],
        run_config={"resources": {"sqlmesh": {"config": config}}},
        tags={
            "dagster/asset_partition_range_start": "2026-11-02",
            "dagster/asset_partition_range_end": "2026-11-03",
        },
        instance=instance,
        raise_on_error=False,
    )
    assert run.success
    evaluated, restated = evaluated_and_restated(instance, run.run_id)
    assert evaluated == shown_fills(seen)
    assert restated == {m for m, o in seen.items() if o["sqlmesh/restated"]}
    assert '"warehouse"."shop"."order_totals"' in restated
