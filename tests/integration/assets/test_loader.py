"""The loader's output for a real SQLMesh project: keys, deps, checks, metadata, awkward names."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from mxm_dagster.assets.loader import build_sqlmesh_assets
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.common.names import safe_name
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.specs import ModelSpec
from mxm_dagster.run.resource import SQLMeshResultsResource
from tests.conftest import definitions_for


@pytest.fixture
def graph(faulty_project: Path):
    return definitions_for(faulty_project).resolve_asset_graph()


def key(text: str) -> dg.AssetKey:
    return dg.AssetKey.from_user_string(text)


def test_one_asset_per_model_and_external_sources(graph) -> None:
    executable = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_executable
    }
    assert executable == {
        "raw/numbers",
        "staging/doubled",
        "staging/broken",
        "staging/blocked",
        "staging/readings",
        "marts/after_broken",
        "marts/after_blocked",
        "marts/healthy",
        "reporting/kpi_summary",
    }
    source = graph.get(key("src/readings"))
    assert not source.is_executable
    # one op per model, never a single multi-asset for the project
    ops = {
        graph.get(k).assets_def.node_def.name
        for k in graph.get_all_asset_keys()
        if graph.get(k).is_executable
    }
    assert len(ops) == len(executable)


def test_deps_follow_the_sqlmesh_dag(graph) -> None:
    assert graph.get(key("staging/doubled")).parent_keys == {key("raw/numbers")}
    assert graph.get(key("marts/healthy")).parent_keys == {key("staging/doubled")}
    assert graph.get(key("reporting/kpi_summary")).parent_keys == {key("staging/doubled")}
    assert graph.get(key("staging/readings")).parent_keys == {key("src/readings")}


def test_awkward_model_name_survives(graph) -> None:
    node = graph.get(key("reporting/kpi_summary"))
    assert node.metadata["sqlmesh/model"] == '"warehouse"."reporting"."kpi-summary"'
    assert node.assets_def.node_def.name == "reporting__kpi_summary"


def test_one_check_per_audit_blocking_as_in_sqlmesh(graph) -> None:
    checks = {
        (c.asset_key.to_user_string(), c.name): c
        for k in graph.get_all_asset_keys()
        if graph.get(k).is_executable
        for c in graph.get(k).assets_def.check_specs
    }
    assert set(checks) == {
        ("raw/numbers", "not_null"),
        ("raw/numbers", "unique_values"),
        ("staging/doubled", "accepted_range_non_blocking"),
        ("staging/blocked", "not_null"),
    }
    assert checks[("raw/numbers", "not_null")].blocking
    assert not checks[("staging/doubled", "accepted_range_non_blocking")].blocking


def test_metadata_owners_tags_kinds_code_version(graph) -> None:
    node = graph.get(key("raw/numbers"))
    assert node.description == "The numbers one to ten."
    assert node.group_name == "raw"
    assert node.owners == ["team:data_platform"]
    assert set(node.tags) >= {"fixture", "raw"}
    assert {"sqlmesh", "duckdb"} <= set(node.kinds)
    assert node.code_version and len(node.code_version) > 5
    metadata = node.metadata
    assert metadata["sqlmesh/kind"] == "FULL"
    assert metadata["sqlmesh/cron"] == "@daily"
    assert metadata["sqlmesh/grain"] == "n"
    assert metadata["dagster/table_name"] == "warehouse.raw.numbers"
    columns = metadata["dagster/column_schema"].columns
    assert [(c.name, c.description) for c in columns] == [("n", "the number itself")]
    assert graph.get(key("staging/doubled")).owners == ["quant@example.com"]


def test_code_version_changes_with_the_model_sql(faulty_project: Path) -> None:
    before = definitions_for(faulty_project).resolve_asset_graph()
    model = faulty_project / "models" / "healthy.sql"
    model.write_text(model.read_text().replace("sum(d)", "sum(d) + 1"))
    after = definitions_for(faulty_project).resolve_asset_graph()
    changed = [
        k.to_user_string()
        for k in after.get_all_asset_keys()
        if after.get(k).is_executable and after.get(k).code_version != before.get(k).code_version
    ]
    assert changed == ["marts/healthy"]


def test_translator_is_the_customisation_seam(faulty_project: Path) -> None:
    class Prefixed(SQLMeshTranslator):
        def get_asset_key(self, model: ModelSpec) -> dg.AssetKey:
            return super().get_asset_key(model).with_prefix("warehouse")

        def get_group_name(self, model: ModelSpec) -> str | None:
            return "sqlmesh"

    spec = SQLMeshProject(path=faulty_project).load_spec()
    assets = build_sqlmesh_assets(spec, faulty_project, Prefixed(spec))
    keys = {
        k.to_user_string() for a in assets for k in getattr(a, "keys", [getattr(a, "key", None)])
    }
    assert "warehouse/marts/healthy" in keys
    groups = {a.group_names_by_key[a.key] for a in assets if isinstance(a, dg.AssetsDefinition)}
    assert groups == {"sqlmesh"}


def test_colliding_names_get_distinct_keys(faulty_project: Path) -> None:
    (faulty_project / "models" / "kpi_underscore.sql").write_text(
        "MODEL (name reporting.kpi_summary, kind VIEW);\nSELECT 1 AS c\n"
    )
    graph = definitions_for(faulty_project).resolve_asset_graph()
    reporting = sorted(k.path[-1] for k in graph.get_all_asset_keys() if k.path[0] == "reporting")
    assert len(reporting) == 2 and len(set(reporting)) == 2


def test_safe_name() -> None:
    assert safe_name('"kpi-summary"') == "kpi_summary"
    assert safe_name("a.b c") == "a_b_c"
    assert safe_name("---").startswith("_")


def test_spec_cache_is_reused_until_files_change(faulty_project: Path) -> None:
    project = SQLMeshProject(path=faulty_project)
    project.load_spec()
    cached = list((faulty_project / ".cache" / "mxm_dagster").glob("spec-*.json"))
    assert len(cached) == 1
    SQLMeshProject(path=faulty_project).load_spec()
    assert list((faulty_project / ".cache" / "mxm_dagster").glob("spec-*.json")) == cached
    (faulty_project / "models" / "numbers.sql").write_text(
        (faulty_project / "models" / "numbers.sql").read_text() + "\n"
    )
    SQLMeshProject(path=faulty_project).load_spec()
    assert len(list((faulty_project / ".cache" / "mxm_dagster").glob("spec-*.json"))) == 2


def test_a_copied_project_gets_its_own_spec(faulty_project: Path, tmp_path: Path) -> None:
    """A spec names absolute paths (the DuckDB file, model files): a copy of the project made
    with its `.cache` (an image build, `cp -r`) must not reuse the original's."""
    SQLMeshProject(path=faulty_project).load_spec()
    copy = tmp_path / "copy"
    shutil.copytree(faulty_project, copy)
    spec = SQLMeshProject(path=copy).load_spec()
    assert spec.warehouse == str(copy / "warehouse.duckdb")
    files = [m.file_path for m in spec.models if m.file_path]
    assert files and all(f.startswith(str(copy)) for f in files)


def test_the_ui_lists_the_resource_sqlmesh_as_sqlmesh_results_resource(
    faulty_project: Path,
) -> None:
    """Dagster's resource list shows each resource's key and class, read from the repository
    snapshot the code server sends the webserver."""
    from dagster._core.remote_representation.external_data import RepositorySnap

    defs = definitions_for(faulty_project)
    assert isinstance(defs.resources["sqlmesh"], SQLMeshResultsResource)
    snap = RepositorySnap.from_def(defs.get_repository_def())
    assert {r.name: r.resource_type for r in snap.resources} == {
        "sqlmesh": "mxm_dagster.run.resource.SQLMeshResultsResource"
    }
