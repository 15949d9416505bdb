"""How a model appears in Dagster, from hand-built specs."""

from __future__ import annotations

from dataclasses import replace

import dagster as dg

from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.records.specs import AuditSpec, ModelSpec, ProjectSpec
from tests.unit.specs_factory import model


def project(*models: ModelSpec) -> ProjectSpec:
    return ProjectSpec(default_catalog="db", dialect="duckdb", engine="duckdb", models=models)


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
