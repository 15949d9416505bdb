"""What the Dagster UI shows of a model, as dagster-dbt users expect it: a link to the model's
source, column lineage, and a row count of what the environment serves. Real SQLMesh and Dagster."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import (
    REFERENCE_PROJECT,
    copy_project,
    definitions_for,
    materialize,
    query,
)

pytestmark = pytest.mark.timeout(300)

#: A forward-only model: a change to it planned in a development environment is previewed in a
#: table of that environment's own, while the model's physical table keeps production's rows.
EVENTS_MODEL = """MODEL (
  name staging.events,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day, forward_only true),
  start '{start}',
  cron '@daily'
);
SELECT d::DATE AS day, 1 AS v
FROM generate_series(@start_ds::DATE, @end_ds::DATE, INTERVAL 1 DAY) AS t(d)
"""


@pytest.fixture(scope="module")
def reference_graph(tmp_path_factory: pytest.TempPathFactory) -> dg.AssetGraph:
    project = copy_project(REFERENCE_PROJECT, tmp_path_factory.mktemp("ref") / "sqlmesh_project")
    return definitions_for(project).resolve_asset_graph()


def _metadata(graph: dg.AssetGraph, key: str) -> dict:
    return graph.get(dg.AssetKey.from_user_string(key)).metadata


def test_every_model_links_to_the_line_its_definition_starts_at(
    reference_graph: dg.AssetGraph,
) -> None:
    models = [k for k in reference_graph.get_all_asset_keys() if k.path[0] != "landing"]
    assert len(models) == 13
    for key in models:
        (reference,) = _metadata(reference_graph, key.to_user_string())[
            "dagster/code_references"
        ].code_references
        lines = Path(reference.file_path).read_text().splitlines()
        line = lines[reference.line_number - 1]
        if reference.file_path.endswith(".py"):
            assert re.match(r"def \w+\(", line), (key, line)
        else:
            assert line.startswith("MODEL ("), (key, line)
    calendar = _metadata(reference_graph, "raw/trading_calendar")["dagster/code_references"]
    assert calendar.code_references[0].file_path.endswith("models/raw/trading_calendar.py")


def test_column_lineage_of_a_join_names_the_columns_each_side_gives(
    reference_graph: dg.AssetGraph,
) -> None:
    lineage = _metadata(reference_graph, "marts/etf_cost_ranking")["dagster/column_lineage"]
    deps = {
        column: {(d.asset_key.to_user_string(), d.column_name) for d in column_deps}
        for column, column_deps in lineage.deps_by_column.items()
    }
    master, ter = "staging/stg_etf_master", "marts/ter_comparison"
    # etf_cost_ranking.sql: `c.n_etfs AS n_etfs_in_index`, `m.isin = c.cheapest_isin`,
    # `((m.ter_pct - c.min_ter_pct) * 100)::INT AS ter_vs_cheapest_bps`, window over m's columns
    assert deps["isin"] == {(master, "isin")}
    assert deps["n_etfs_in_index"] == {(ter, "n_etfs")}
    assert deps["is_cheapest_in_index"] == {(master, "isin"), (ter, "cheapest_isin")}
    assert deps["ter_vs_cheapest_bps"] == {(master, "ter_pct"), (ter, "min_ter_pct")}
    assert deps["ter_rank_in_index"] == {(master, "index_name"), (master, "ter_pct")}
    assert set(deps) == {
        c.name
        for c in _metadata(reference_graph, "marts/etf_cost_ranking")[
            "dagster/column_schema"
        ].columns
    }


def test_columns_read_from_an_external_table_or_a_seed_map_to_that_asset(
    reference_graph: dg.AssetGraph,
) -> None:
    quotes = _metadata(reference_graph, "staging/stg_daily_quotes")["dagster/column_lineage"]
    assert quotes.deps_by_column["close_price"] == [
        dg.TableColumnDep(dg.AssetKey(["landing", "etf_daily_quotes"]), "close_price")
    ]
    master = _metadata(reference_graph, "staging/stg_etf_master")["dagster/column_lineage"]
    assert master.deps_by_column["ter"] == [
        dg.TableColumnDep(dg.AssetKey(["raw", "etf_master"]), "ter_pct")
    ]
    # a seed and a Python model have no query, hence no lineage
    assert "dagster/column_lineage" not in _metadata(reference_graph, "raw/etf_master")
    assert "dagster/column_lineage" not in _metadata(reference_graph, "raw/trading_calendar")


def test_row_count_is_what_the_environment_view_serves_not_the_physical_table(
    clean_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = clean_project / "warehouse.duckdb"
    events = clean_project / "models" / "events.sql"
    # Both runs as of one moment, read once: six days are due whenever the test runs. (Not a
    # fixed past date: SQLMesh starts a dev plan yesterday by the wall clock, and refuses an
    # execution time before that.)
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = moment.date() - dt.timedelta(days=6)
    events.write_text(EVENTS_MODEL.format(start=start.isoformat()))
    pinned = {"mxm/execution_time": moment.strftime("%Y-%m-%d %H:%M:%S")}
    built = materialize(clean_project, ["staging/events"], tags=pinned)
    prod = built.materializations()["staging/events"]
    [(prod_rows,)] = query(database, "SELECT count(*) FROM staging.events")
    assert prod["dagster/row_count"] == prod_rows == 6

    # a forward-only change planned in dev: dev's view reads the preview in dev's own table
    events.write_text(events.read_text().replace("1 AS v", "2 AS v"))
    monkeypatch.setenv("MXM_SQLMESH_ENVIRONMENT", "dev")
    result = materialize(clean_project, ["staging/events"], tags=pinned)
    assert result.success, result.messages()
    dev = result.materializations()["staging/events"]
    assert dev["sqlmesh/outcome"] == "evaluated"
    assert dev["sqlmesh/view"].startswith("warehouse.staging__dev.")
    [(served,)] = query(database, f"SELECT count(*) FROM {dev['sqlmesh/view']}")
    [(physical,)] = query(database, f"SELECT count(*) FROM {prod['sqlmesh/physical_table']}")
    assert physical == prod_rows != served
    assert dev["dagster/row_count"] == served
