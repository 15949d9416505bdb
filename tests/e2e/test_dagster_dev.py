"""`dagster dev` end to end, through the GraphQL API the UI uses.

A user starts `dagster dev -w workspace.yaml`, materializes everything, edits two models, reloads
the definitions and materializes just those two. Meanwhile no process of dagster dev (webserver,
daemon, code server) may keep the DuckDB warehouse open: that would block every run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest

from mxm_dagster.run.events import AUDITS_NOT_RUN_AGAIN
from tests.e2e.dagster_dev import (
    AssetNode,
    AssetPath,
    DagsterDev,
    add_constant_column,
    project_model_names,
    query_warehouse,
    warehouse_path,
)
from tests.support.sqlmesh_state import evaluations, prod_planned_once, written_twice

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]

# A leaf model and its parent view, whose only child it is: editing both changes nothing
# downstream of the pair, so a run of just these two has nothing else to evaluate.
EDITED_MODELS = ("marts.etf_cost_ranking", "marts.fund_overview")
MARKER_COLUMN = "e2e_revision"
EXECUTION_ID = "sqlmesh/execution_id"
OUTCOME = "sqlmesh/outcome"


def model_nodes(nodes: dict[AssetPath, AssetNode]) -> dict[str, AssetNode]:
    return {node.model: node for node in nodes.values() if node.model}


def assert_nothing_holds_warehouse(dev: DagsterDev, warehouse: Path, moment: str) -> None:
    holders = dev.processes_holding(warehouse)
    assert not holders, f"{moment}: dagster dev processes hold {warehouse} open: {holders}"


def assert_run_succeeded(dev: DagsterDev, run_id: str) -> None:
    status = dev.wait_for_run(run_id)
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{dev.run_errors(run_id)}"


def assert_checks_ran_on_unchanged_data(
    dev: DagsterDev, nodes: Iterable[AssetNode], run_id: str
) -> None:
    """Every check of `nodes` has one result in the run, from audits on unchanged data (checks
    executed alone, ADR 12)."""
    for node in nodes:
        for check in node.checks:
            label = f"{node.user_string}:{check.name}"
            found = dev.check_executions(node.key, check.name)
            executions = [e for e in found if e["runId"] == run_id]
            assert len(executions) == 1, f"{label} not recorded in run {run_id}"
            expected = {"SUCCEEDED"} if check.blocking else {"SUCCEEDED", "FAILED"}
            assert executions[0]["status"] in expected, f"{label}: {executions[0]}"
            metadata = executions[0]["metadata"]
            assert metadata.get("sqlmesh/data_unchanged") == "True", f"{label}: {metadata}"


def test_code_location_serves_every_model(dagster_dev: DagsterDev, e2e_project: Path) -> None:
    """Every model file of the project is one materializable asset `[schema, table]`."""
    models = model_nodes(dagster_dev.asset_nodes())
    assert set(models) == project_model_names(e2e_project)
    for name, node in models.items():
        schema, table = name.split(".")
        assert node.key == (schema, table)
        assert node.op_names == (f"{schema}__{table}",)
        assert node.materializable and node.code_version, name
    assert_nothing_holds_warehouse(dagster_dev, warehouse_path(e2e_project), "after loading")


def test_materialize_all_then_edited_models_only(
    dagster_dev: DagsterDev, e2e_project: Path
) -> None:
    warehouse = warehouse_path(e2e_project)
    nodes = dagster_dev.asset_nodes()
    models = model_nodes(nodes)

    # Everything, on a fresh warehouse: SQLMesh evaluates every model, once for the whole run.
    # Time partitions are off by default (ADR 5): "Materialize all" asks for no partitions.
    first_run = dagster_dev.launch_assets(n for n in nodes.values() if n.materializable)
    assert_run_succeeded(dagster_dev, first_run)
    materialized = dagster_dev.run_materializations(first_run)
    # one record per asset
    assert {m.key for m in materialized} == {k for k, n in nodes.items() if n.materializable}
    model_materializations = [m for m in materialized if m.key in {n.key for n in models.values()}]
    assert {m.metadata.get(OUTCOME) for m in model_materializations} == {"evaluated"}
    first_executions = {m.metadata.get(EXECUTION_ID) for m in model_materializations}
    assert len(first_executions) == 1, f"SQLMesh ran more than once: {first_executions}"
    assert_nothing_holds_warehouse(dagster_dev, warehouse, "after materializing everything")
    # SQLMesh's state says the same: one plan made prod, no interval evaluated twice
    assert prod_planned_once(warehouse)
    assert not written_twice(warehouse)
    for name in EDITED_MODELS:
        columns = query_warehouse(
            warehouse,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema || '.' || table_name = '{name}'",
        )
        assert columns and (MARKER_COLUMN,) not in columns, name

    # Edit two models in the project, then "Reload definitions".
    edited = {name: models[name] for name in EDITED_MODELS}
    edited_keys = {node.key for node in edited.values()}
    assert all(set(node.children) <= edited_keys for node in edited.values())
    marker = f"e2e-{uuid.uuid4().hex[:8]}"
    for name in EDITED_MODELS:
        add_constant_column(e2e_project, name, MARKER_COLUMN, marker)
    dagster_dev.reload_location()
    reloaded = dagster_dev.asset_nodes()
    changed = {
        key for key, node in reloaded.items() if node.code_version != nodes[key].code_version
    }
    assert changed == edited_keys
    assert_nothing_holds_warehouse(dagster_dev, warehouse, "after reloading the edited project")

    # Just the two edited models.
    since = int(time.time() * 1000)
    second_run = dagster_dev.launch_assets(reloaded[key] for key in sorted(edited_keys))
    assert_run_succeeded(dagster_dev, second_run)
    steps = {s["stepKey"]: s["status"] for s in dagster_dev.run(second_run)["stepStats"]}
    assert steps == {op: "SUCCESS" for node in edited.values() for op in node.op_names}
    materialized = dagster_dev.run_materializations(second_run)
    assert sorted(m.key for m in materialized) == sorted(edited_keys), "other assets materialized"
    assert {m.metadata.get(OUTCOME) for m in materialized} == {"evaluated"}
    second_executions = {m.metadata.get(EXECUTION_ID) for m in materialized}
    assert len(second_executions) == 1 and not second_executions & first_executions
    assert_nothing_holds_warehouse(dagster_dev, warehouse, "after materializing the edited models")
    # SQLMesh's state: it evaluated the edited models (the FULL one at least: a view may be
    # recreated without an interval) and nothing else
    written = set(evaluations(warehouse, since))
    assert '"justetf"."marts"."fund_overview"' in written
    assert written <= {'"justetf"."{}"."{}"'.format(*name.split(".")) for name in EDITED_MODELS}

    for name in EDITED_MODELS:
        values = query_warehouse(warehouse, f"SELECT DISTINCT {MARKER_COLUMN} FROM {name}")
        assert values == [(marker,)], f"{name} does not show the edit: {values}"

    for node in edited.values():
        assert node.checks, f"{node.user_string} has no asset checks"
        for check in node.checks:
            executions = [
                e
                for e in dagster_dev.check_executions(node.key, check.name)
                if e["runId"] == second_run
            ]
            label = f"{node.user_string}:{check.name}"
            assert len(executions) == 1, f"{label} not recorded in run {second_run}"
            expected = {"SUCCEEDED"} if check.blocking else {"SUCCEEDED", "FAILED"}
            assert executions[0]["status"] in expected, f"{label}: {executions[0]}"

    # The same two again: nothing changed, so SQLMesh evaluates nothing and their audits do not
    # run again on the unchanged data (ADR 19): no check result in that run, the records say
    # why, and the second run's results are still the checks' latest evaluations.
    third_run = dagster_dev.launch_assets(reloaded[key] for key in sorted(edited_keys))
    assert_run_succeeded(dagster_dev, third_run)
    materialized = dagster_dev.run_materializations(third_run)
    assert sorted(m.key for m in materialized) == sorted(edited_keys)
    assert {m.metadata.get(OUTCOME) for m in materialized} == {"up_to_date"}
    assert {m.metadata.get("sqlmesh/audits") for m in materialized} == {AUDITS_NOT_RUN_AGAIN}
    for node in edited.values():
        for check in node.checks:
            evaluated = [
                e
                for e in dagster_dev.check_executions(node.key, check.name)
                if e["status"] in ("SUCCEEDED", "FAILED")
            ]
            assert evaluated and evaluated[0]["runId"] == second_run, check.name

    # Their checks alone, as "Execute all" on a Checks tab: audits on the current data, nothing
    # materialized.
    checks_run = dagster_dev.launch_checks(edited.values())
    assert_run_succeeded(dagster_dev, checks_run)
    assert dagster_dev.run_materializations(checks_run) == []
    assert_checks_ran_on_unchanged_data(dagster_dev, edited.values(), checks_run)
    assert_nothing_holds_warehouse(dagster_dev, warehouse, "after the up-to-date run")


def test_broken_model_file_is_a_clear_load_error_and_reload_recovers(
    dagster_dev: DagsterDev, e2e_project: Path
) -> None:
    """A syntax error shows as the code location's load error naming the file; fixing the file
    and reloading recovers without restarting dagster dev."""
    broken = e2e_project / "models" / "marts" / "zz_broken.sql"
    broken.write_text("MODEL (name marts.zz_broken, kind FULL);\nSELECT FROM WHERE (((\n")
    try:
        entry = dagster_dev.graphql(
            "mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {"
            " __typename ... on WorkspaceLocationEntry { loadStatus locationOrLoadError {"
            " __typename ... on PythonError { message causes { message } } } } } }",
            {"name": dagster_dev.location},
            timeout=120,
        )["reloadRepositoryLocation"]
        error = entry["locationOrLoadError"]
        assert error["__typename"] == "PythonError", entry
        text = " ".join([error["message"], *(c["message"] for c in error["causes"])])
        assert str(broken) in text
        assert "Line 2" in text
    finally:
        broken.unlink()
    dagster_dev.reload_location()
    assert set(model_nodes(dagster_dev.asset_nodes())) == project_model_names(e2e_project)
