"""How a model appears in Dagster, from hand-built specs."""

from __future__ import annotations

from dataclasses import replace

import dagster as dg
import pytest

from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.records.specs import (
    AuditSpec,
    ColumnDep,
    ColumnLineageSpec,
    LoadedModels,
    ModelSpec,
)
from tests.unit.specs_factory import model


def project(*models: ModelSpec) -> LoadedModels:
    return LoadedModels(default_catalog="db", dialect="duckdb", engine="duckdb", models=models)


def spec(**fields) -> ModelSpec:
    orders = replace(model('"db"."sales"."orders"'), schema="sales")
    return replace(orders, **fields)


def test_a_model_in_the_default_catalog_is_keyed_by_schema_and_table() -> None:
    translator = SQLMeshTranslator(project())
    assert translator.get_asset_key(spec()) == dg.AssetKey(["sales", "orders"])


def test_a_model_in_another_catalog_is_prefixed_by_it() -> None:
    translator = SQLMeshTranslator(project())
    other = spec(catalog="lake-house", table='"daily-orders"')
    assert translator.get_asset_key(other) == dg.AssetKey(["lake_house", "sales", "daily_orders"])


def test_owners_are_emails_or_teams() -> None:
    translator = SQLMeshTranslator(project())
    owned = spec(owner="ana@example.com, data platform ,")
    assert translator.get_owners(owned) == ["ana@example.com", "team:data_platform"]
    assert translator.get_owners(spec()) == []


def test_checks_follow_audits_and_a_skip_audit_never_blocks() -> None:
    audits = (
        AuditSpec("not_null", "not_null_id", True, {"columns": "id"}),
        AuditSpec("unique_values", "unique_values", True, skip=True),
        AuditSpec("fresh", "fresh", False, standalone=True, reads=("up", "unknown")),
    )
    translator = SQLMeshTranslator(project())
    key = dg.AssetKey(["sales", "orders"])
    up_key = dg.AssetKey(["sales", "up"])
    checks = translator.get_check_specs(spec(audits=audits), key, {"up": up_key})
    specs = {c.name: c for c in checks}
    assert {n: c.blocking for n, c in specs.items()} == {
        "not_null_id": True,
        "unique_values": False,
        "fresh": False,
    }
    assert specs["not_null_id"].description == "SQLMesh audit not_null(columns := id), blocking"
    assert specs["unique_values"].description.endswith("so it reports nothing")
    assert [d.asset_key for d in specs["fresh"].additional_deps] == [up_key]


def test_partitions_only_when_the_project_turns_them_on() -> None:
    assert SQLMeshTranslator(project()).get_partitions_def(spec()) is None
    partitions_def = SQLMeshTranslator(project(), time_partitions=True).get_partitions_def(spec())
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
    assert SQLMeshTranslator(project(), True).get_partitions_def(spec(kind="FULL")) is None


def test_code_references_point_at_the_model_file_and_line_without_a_beta_warning(
    recwarn: pytest.WarningsRecorder,
) -> None:
    translator = SQLMeshTranslator(project())
    metadata = translator.get_metadata(spec(file_path="/p/models/orders.sql", file_line=4))
    references = metadata["dagster/code_references"].code_references
    assert [(r.file_path, r.line_number) for r in references] == [("/p/models/orders.sql", 4)]
    assert not [w for w in recwarn if issubclass(w.category, dg.BetaWarning)]
    assert "dagster/code_references" not in translator.get_metadata(spec())


def test_column_lineage_maps_upstream_models_to_their_asset_keys() -> None:
    customers = replace(model('"db"."sales"."customers"', is_external=True), schema="sales")
    orders = spec(
        depends_on=(customers.name,),
        column_lineage=(
            ColumnLineageSpec(
                "customer",
                (ColumnDep(customers.name, "id"), ColumnDep('"db"."s"."unknown"', "x")),
            ),
            ColumnLineageSpec("amount", (ColumnDep(customers.name, "spend"),)),
            ColumnLineageSpec("constant"),
        ),
    )
    translator = SQLMeshTranslator(project(customers, orders))
    keys = {customers.name: dg.AssetKey(["crm", "customers"])}
    asset = translator.get_asset_spec(orders, dg.AssetKey(["sales", "orders"]), [], keys)
    lineage = asset.metadata["dagster/column_lineage"]
    assert lineage == dg.TableColumnLineage(
        deps_by_column={
            "customer": [dg.TableColumnDep(dg.AssetKey(["crm", "customers"]), "id")],
            "amount": [dg.TableColumnDep(dg.AssetKey(["crm", "customers"]), "spend")],
        }
    )
    assert translator.get_column_lineage(spec(), keys) is None


def test_a_subclass_may_drop_column_lineage() -> None:
    class NoLineage(SQLMeshTranslator):
        def get_column_lineage(self, model, keys):  # type: ignore[no-untyped-def]
            return None

    orders = spec(column_lineage=(ColumnLineageSpec("a", (ColumnDep('"db"."s"."x"', "a"),)),))
    keys = {'"db"."s"."x"': dg.AssetKey("x")}
    asset = NoLineage(project(orders)).get_asset_spec(orders, dg.AssetKey("o"), [], keys)
    assert "dagster/column_lineage" not in asset.metadata
