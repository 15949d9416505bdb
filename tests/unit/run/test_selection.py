"""Which models a run means and where they sit, on an asset graph built from hand-made specs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pytest

from mxm_dagster.asset_graph.metadata import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from mxm_dagster.assets.loader import RESOURCE_KEY, build_sqlmesh_assets
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.records.specs import LoadedModels
from mxm_dagster.run import selection
from mxm_dagster.run.resource import SQLMeshResultsResource
from tests.unit.specs_factory import model

# landing (Python asset, provides raw.landed) -> staged -> daily -> report (FULL)
# source (external, no Python asset) -> daily;  daily -> weekly
SOURCE = replace(model('"db"."raw"."source"', kind="EXTERNAL", is_external=True), schema="raw")
LANDED = replace(model('"db"."raw"."landed"', kind="EXTERNAL", is_external=True), schema="raw")
STAGED = model('"db"."s"."staged"', depends_on=(LANDED.name,))
DAILY = model('"db"."s"."daily"', depends_on=(STAGED.name, SOURCE.name))
REPORT = model('"db"."s"."report"', kind="FULL", interval_unit=None, depends_on=(DAILY.name,))
WEEKLY = model('"db"."s"."weekly"', depends_on=(DAILY.name,))
PROJECT = LoadedModels(
    default_catalog="db",
    dialect="duckdb",
    engine="duckdb",
    models=(SOURCE, LANDED, STAGED, DAILY, REPORT, WEEKLY),
)


def key(name: str) -> dg.AssetKey:
    return dg.AssetKey.from_user_string(name)


@dg.asset(key=key("raw/landed"))
def landing() -> None:
    """Stands for the Python asset that lands an external table."""


@pytest.fixture(scope="module")
def graph():  # type: ignore[no-untyped-def]
    translator = SQLMeshTranslator(PROJECT, time_partitions=True)
    assets = build_sqlmesh_assets(PROJECT, "/nowhere", translator, provided_keys=[landing.key])
    resources = {RESOURCE_KEY: SQLMeshResultsResource()}  # required to build; never run here
    return dg.Definitions(assets=[*assets, landing], resources=resources).resolve_asset_graph()


ALL_MODELS = {
    STAGED.name: key("s/staged"),
    DAILY.name: key("s/daily"),
    REPORT.name: key("s/report"),
    WEEKLY.name: key("s/weekly"),
}


def test_every_sqlmesh_model_maps_to_its_key_and_sources_and_python_assets_do_not(graph) -> None:
    assert set(graph.get_all_asset_keys()) == {*ALL_MODELS.values(), key("raw/source"), landing.key}
    assert selection.asset_keys_by_model_of(graph) == ALL_MODELS


def test_the_run_means_the_models_among_its_keys(graph) -> None:
    run_keys = {key("raw/landed"), key("raw/source"), key("s/daily"), key("s/report")}
    assert selection.models_of(graph, run_keys) == {DAILY.name, REPORT.name}
    assert selection.models_of(graph, set()) == set()


def test_models_with_checks_but_not_assets_selected_are_checks_only(graph) -> None:
    check_keys = {
        dg.AssetCheckKey(key("s/daily"), "not_null"),
        dg.AssetCheckKey(key("s/report"), "x"),
    }
    run_keys = {key("s/report")}
    assert selection.checks_only_models_of(graph, run_keys, check_keys) == {DAILY.name}
    assert selection.checks_only_models_of(graph, run_keys, set()) == set()
    source_check = {dg.AssetCheckKey(key("raw/source"), "fresh")}  # not a SQLMesh model
    assert selection.checks_only_models_of(graph, set(), source_check) == set()


def test_downstream_goes_through_the_runs_assets_only(graph) -> None:
    everything = set(graph.get_all_asset_keys())
    assert selection.downstream_of(graph, key("s/staged"), everything) == [
        key("s/daily"),
        key("s/report"),
        key("s/weekly"),
    ]
    # daily left out of the run: nothing past it is skipped because of staged
    assert selection.downstream_of(graph, key("s/staged"), everything - {key("s/daily")}) == []
    assert selection.downstream_of(graph, key("s/daily"), {key("s/weekly")}) == [key("s/weekly")]
    assert selection.downstream_of(graph, key("s/weekly"), everything) == []
    assert selection.downstream_of(graph, key("not/in_graph"), everything) == []


def test_only_time_partitioned_assets_have_a_partitions_def(graph) -> None:
    daily = selection.partitions_def_of(graph, key("s/daily"))
    assert isinstance(daily, dg.TimeWindowPartitionsDefinition)
    assert daily.get_first_partition_key() == "2024-01-01"
    assert selection.partitions_def_of(graph, key("s/report")) is None  # FULL
    assert selection.partitions_def_of(graph, key("raw/landed")) is None  # Python asset
    assert selection.partitions_def_of(graph, key("not/in_graph")) is None


def test_models_downstream_of_a_pending_python_asset_are_deferred(graph) -> None:
    models = set(ALL_MODELS)
    pending = {key("raw/landed")}
    assert selection.deferred_models_of(graph, models, ALL_MODELS, pending) == {
        STAGED.name,
        DAILY.name,
        REPORT.name,
        WEEKLY.name,
    }
    assert selection.deferred_models_of(graph, models, ALL_MODELS, {key("s/daily")}) == {
        DAILY.name,
        REPORT.name,
        WEEKLY.name,
    }
    assert selection.deferred_models_of(graph, models, ALL_MODELS, set()) == set()


RANGE = {RANGE_START_TAG: "2024-01-02", RANGE_END_TAG: "2024-01-04"}


def test_the_runs_window_spans_its_partition_range(graph) -> None:
    run_keys = {key("s/report"), key("s/daily")}
    assert selection.time_window_of(graph, run_keys, RANGE) == (
        datetime(2024, 1, 2, tzinfo=UTC),
        datetime(2024, 1, 5, tzinfo=UTC),
    )
    assert selection.time_window_of(graph, run_keys, {PARTITION_TAG: "2024-01-02"}) == (
        datetime(2024, 1, 2, tzinfo=UTC),
        datetime(2024, 1, 3, tzinfo=UTC),
    )


def test_a_run_without_partition_tags_or_partitioned_assets_has_no_window(graph) -> None:
    assert selection.time_window_of(graph, {key("s/daily")}, {}) is None
    assert selection.time_window_of(graph, {key("s/report")}, RANGE) is None


def test_a_steps_partitions_are_the_runs_range_or_its_one_partition(graph) -> None:
    daily = selection.partitions_def_of(graph, key("s/daily"))
    assert daily is not None
    assert selection.partition_keys_of(daily, RANGE) == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert selection.partition_keys_of(daily, {PARTITION_TAG: "2024-01-03"}) == ["2024-01-03"]
    assert selection.partition_keys_of(daily, {}) == []


def test_two_projects_with_the_same_model_names_keep_their_own_models() -> None:
    """Both projects name a model `"db"."s"."daily"`: each project's map and selection hold its
    own keys only, and either project's models count as SQLMesh's."""

    class Prefixed(SQLMeshTranslator):
        prefix = ""

        def get_asset_key(self, model):  # type: ignore[no-untyped-def]
            return super().get_asset_key(model).with_prefix(self.prefix)

    class Alpha(Prefixed):
        prefix = "alpha"

    class Beta(Prefixed):
        prefix = "beta"

    alpha = build_sqlmesh_assets(PROJECT, "/a", Alpha(PROJECT), resource_key="sqlmesh_alpha")
    beta = build_sqlmesh_assets(PROJECT, "/b", Beta(PROJECT), resource_key="sqlmesh_beta")
    sources = {key("alpha/raw/source"), key("alpha/raw/landed")}
    beta = [a for a in beta if not isinstance(a, dg.AssetSpec)]  # one copy of the sources
    resources = {
        "sqlmesh_alpha": SQLMeshResultsResource(),
        "sqlmesh_beta": SQLMeshResultsResource(),
    }
    graph = dg.Definitions(assets=[*alpha, *beta], resources=resources).resolve_asset_graph()
    of_alpha = selection.asset_keys_by_model_of(graph, "/a")
    of_beta = selection.asset_keys_by_model_of(graph, "/b")
    assert of_alpha == {name: k.with_prefix("alpha") for name, k in ALL_MODELS.items()}
    assert of_beta == {name: k.with_prefix("beta") for name, k in ALL_MODELS.items()}
    run_keys = {key("alpha/s/daily"), key("beta/s/report")}
    assert selection.models_of(graph, run_keys, "/a") == {DAILY.name}
    assert selection.models_of(graph, run_keys, "/b") == {REPORT.name}
    assert selection.sqlmesh_model_keys_of(graph) == {*of_alpha.values(), *of_beta.values()}
    assert not sources & selection.sqlmesh_model_keys_of(graph)
