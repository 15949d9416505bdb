"""`dg` and the public builder, through the real `dg` CLI in subprocesses and real Dagster runs.

This repo is a `dg` project whose defs folder declares the reference flow through
`SQLMeshProjectComponent`; a fresh temporary `dg` project scaffolds the component for a SQLMesh
project outside this repo (`sqlmesh init duckdb`) and launches it; `sqlmesh_definitions` runs the
gateway and environment it was given, whatever the MXM_ variables say.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing.utils import component_defs

from mxm_dagster import (
    SQLMeshProject,
    SQLMeshProjectComponent,
    SQLMeshResultsResource,
    SQLMeshTranslator,
    sqlmesh_definitions,
)
from mxm_dagster.assets.component import SQLMeshProjectScaffolder, SQLMeshProjectScaffoldParams
from tests.conftest import (
    DUCKDB_CONFIG,
    REFERENCE_PROJECT,
    REPO,
    RunOutcome,
    dagster_home,
    query,
    run_cli,
    views,
    warehouse_objects,
)

COMPONENT = "mxm_dagster.SQLMeshProjectComponent"
_MXM_VARIABLES = (
    "MXM_SQLMESH_PROJECT",
    "MXM_SQLMESH_GATEWAY",
    "MXM_SQLMESH_ENVIRONMENT",
    "MXM_SQLMESH_PARTITIONS",
)


def _dg(args: list[str], cwd: Path, home: Path, timeout: int = 600):
    """`dg ARGS` in `cwd`, with no MXM_ variable set: only the defs say what to load."""
    env = {"DAGSTER_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    done = run_cli(["dg", *args], {**env, **{name: "" for name in _MXM_VARIABLES}}, cwd, timeout)
    assert done.returncode == 0, f"dg {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _listed(cwd: Path, home: Path) -> dict:
    return json.loads(_dg(["list", "defs", "--json"], cwd, home).stdout)


# ------------------------------------------------------------------ this repo as a dg project


def test_this_repo_is_a_dg_project_declaring_every_model_and_check(tmp_path: Path) -> None:
    home = dagster_home(tmp_path)
    checked = _dg(["check", "defs"], REPO, home)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = _listed(REPO, home)
    spec = SQLMeshProject.at(str(REFERENCE_PROJECT)).load_spec()
    translator = SQLMeshTranslator(spec)
    models = [m for m in spec.models if m.is_model]
    expected_assets = {translator.get_asset_key(m).to_user_string() for m in models}
    executable = {a["asset_key"] for a in listed["assets"] if a["is_executable"]}
    # every SQLMesh model, plus the reference flow's landing asset, which produces the one
    # external model (so the component emits no source asset for it)
    assert executable == expected_assets | {"landing/etf_daily_quotes"}
    expected_checks = {
        f"{translator.get_asset_key(m).to_user_string()}:{a.check_name}"
        for m in models
        for a in m.audits
    }
    assert expected_checks and {c["key"] for c in listed["asset_checks"]} == expected_checks
    assert [r["name"] for r in listed["resources"]] == ["sqlmesh"]
    assert sorted(s["name"] for s in listed["sensors"]) == ["sqlmesh_cron", "sqlmesh_observe"]
    assert "sqlmesh_plan_preview" in {j["name"] for j in listed["jobs"]}


# ------------------------------------------------------------------ a user's dg project


def _user_dg_project(root: Path) -> Path:
    """The smallest `dg` project, as `create-dagster project` lays it out (written here: that
    command fetches templates and uv over the network)."""
    project = root / "shop"
    (project / "shop" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [project]
            name = "shop"
            version = "0.0.1"

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "shop"
            """
        )
    )
    (project / "shop" / "__init__.py").write_text("")
    (project / "shop" / "defs" / "__init__.py").write_text("")
    (project / "shop" / "definitions.py").write_text(
        textwrap.dedent(
            """\
            from pathlib import Path

            import dagster as dg

            defs = dg.components.load_from_defs_folder(project_root=Path(__file__).parent.parent)
            """
        )
    )
    return project


def _sqlmesh_init(folder: Path) -> Path:
    folder.mkdir(parents=True)
    done = run_cli(["sqlmesh", "init", "duckdb"], {}, cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


def test_scaffolded_component_in_a_fresh_dg_project_launches_a_selection(tmp_path: Path) -> None:
    home = dagster_home(tmp_path)
    sqlmesh_project = _sqlmesh_init(tmp_path / "elsewhere" / "warehouse_project")
    project = _user_dg_project(tmp_path / "dg")

    listed_components = _dg(["list", "components", "--json"], project, home).stdout
    assert COMPONENT in {c["key"] for c in json.loads(listed_components)["items"]}

    _dg(["scaffold", "defs", COMPONENT, "sales", "--project", str(sqlmesh_project)], project, home)
    defs_yaml = project / "shop" / "defs" / "sales" / "defs.yaml"
    declared = yaml.safe_load(defs_yaml.read_text())
    assert declared == {"type": COMPONENT, "attributes": {"project": str(sqlmesh_project)}}

    # Dagster's standard translation attributes on top of the translator
    declared["attributes"].update(
        gateway="duckdb", translation={"group_name": "sales", "key_prefix": "shop"}
    )
    defs_yaml.write_text(yaml.safe_dump(declared))
    _dg(["check", "defs"], project, home)
    listed = _listed(project, home)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert set(assets) == {
        "shop/sqlmesh_example/seed_model",
        "shop/sqlmesh_example/incremental_model",
        "shop/sqlmesh_example/full_model",
    }
    assert {a["group_name"] for a in assets.values()} == {"sales"}
    assert assets["shop/sqlmesh_example/full_model"]["dependency_keys"] == [
        "shop/sqlmesh_example/incremental_model"
    ]
    assert {c["key"] for c in listed["asset_checks"]} == {
        "shop/sqlmesh_example/full_model:assert_positive_order_ids"
    }

    # A selection of two of the three models: SQLMesh builds those (and, as `sqlmesh plan
    # --select-model` does, nothing else gets a view promoted by Dagster's steps)
    _dg(
        [
            "launch",
            "--assets",
            "shop/sqlmesh_example/seed_model,shop/sqlmesh_example/incremental_model",
        ],
        project,
        home,
    )
    database = sqlmesh_project / "db.db"
    served = views(database)
    assert ("sqlmesh_example", "seed_model") in served
    assert ("sqlmesh_example", "incremental_model") in served
    assert query(database, "SELECT count(*) FROM sqlmesh_example.incremental_model")[0][0] > 0
    instance = dg.DagsterInstance.from_config(str(home))
    [record] = instance.get_run_records()
    assert record.dagster_run.is_success
    materialized = {
        e.dagster_event.event_specific_data.materialization.asset_key.to_user_string()
        for e in instance.all_logs(record.dagster_run.run_id)
        if e.dagster_event is not None
        and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert materialized == {
        "shop/sqlmesh_example/seed_model",
        "shop/sqlmesh_example/incremental_model",
    }


# ------------------------------------------------------------------ the Python builder

_SECOND_GATEWAY = """
  other:
    connection:
      type: duckdb
      database: other.duckdb
"""


def _with_second_gateway(project: Path) -> Path:
    config = project / "config.yaml"
    text = config.read_text()
    config.write_text(text.replace("gateways:\n", "gateways:" + _SECOND_GATEWAY, 1))
    shutil.copy(project / "warehouse.duckdb", project / "other.duckdb")  # the external source
    return project


def test_the_builder_runs_its_gateway_and_environment_whatever_the_variables_say(
    clean_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _with_second_gateway(clean_project)
    defs = sqlmesh_definitions(SQLMeshProject.at(str(project), gateway="other", environment="dev"))
    # what the run worker would see: variables naming another gateway and environment
    monkeypatch.setenv("MXM_SQLMESH_PROJECT", str(REFERENCE_PROJECT))
    monkeypatch.setenv("MXM_SQLMESH_GATEWAY", "local")
    monkeypatch.setenv("MXM_SQLMESH_ENVIRONMENT", "prod")
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        asset_selection=[dg.AssetKey(["marts", "healthy"]), dg.AssetKey(["staging", "doubled"])],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success
    environments = {
        m.metadata["sqlmesh/environment"].value
        for m in result.asset_materializations_for_node("marts__healthy")
    }
    assert environments == {"dev"}
    assert query(project / "other.duckdb", "SELECT s FROM marts__dev.healthy") == [(110,)]
    # the default gateway's warehouse holds no SQLMesh object of this run
    assert not [key for key in warehouse_objects(project / "warehouse.duckdb") if key[0] != "src"]


def test_the_builder_selects_models_with_sqlmesh_selection_syntax(clean_project: Path) -> None:
    defs = sqlmesh_definitions(
        str(clean_project), select=["+marts.healthy", "tag:raw"], exclude="staging.readings"
    )
    graph = defs.resolve_asset_graph()
    executable = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_executable
    }
    assert executable == {"marts/healthy", "staging/doubled", "raw/numbers"}
    assert isinstance(defs.resources["sqlmesh"], SQLMeshResultsResource)
    checks = {k.to_user_string() for k in graph.asset_check_keys}
    assert {c.split(":")[0] for c in checks} <= executable
    only_upstream = sqlmesh_definitions(str(clean_project), exclude=["raw.numbers+"])
    keys = {k.to_user_string() for k in only_upstream.resolve_asset_graph().get_all_asset_keys()}
    assert "raw/numbers" not in keys and "marts/healthy" not in keys


def test_a_selection_resolves_again_when_the_project_changes(clean_project: Path) -> None:
    before = sqlmesh_definitions(str(clean_project), select="tag:fixture")
    assert {k.to_user_string() for k in before.resolve_asset_graph().executable_asset_keys} == {
        "raw/numbers"
    }
    healthy = clean_project / "models" / "healthy.sql"
    healthy.write_text(healthy.read_text().replace("kind FULL", "kind FULL, tags (fixture)"))
    after = sqlmesh_definitions(str(clean_project), select="tag:fixture")
    assert {k.to_user_string() for k in after.resolve_asset_graph().executable_asset_keys} == {
        "raw/numbers",
        "marts/healthy",
    }


# ------------------------------------------------------------------ the component's attributes


def test_yaml_attributes_partition_select_and_translate_on_top_of_the_translator(
    tmp_path: Path,
) -> None:
    sqlmesh_project = _sqlmesh_init(tmp_path / "init")
    component = SQLMeshProjectComponent.resolve_from_yaml(
        textwrap.dedent(
            f"""\
            project: {sqlmesh_project}
            partitions: true
            exclude: [sqlmesh_example.full_model]
            translation:
              key_prefix: shop
              tags:
                layer: "{{{{ data.schema }}}}"
            """
        )
    )
    defs = component_defs(component=component)
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert set(specs) == {
        "shop/sqlmesh_example/seed_model",
        "shop/sqlmesh_example/incremental_model",
    }
    incremental = specs["shop/sqlmesh_example/incremental_model"]
    assert isinstance(incremental.partitions_def, dg.TimeWindowPartitionsDefinition)
    assert specs["shop/sqlmesh_example/seed_model"].partitions_def is None  # a SEED model
    assert [d.asset_key.to_user_string() for d in incremental.deps] == [
        "shop/sqlmesh_example/seed_model"
    ]
    # the translation merges into the translator's tags and kinds
    assert incremental.tags["layer"] == "sqlmesh_example"
    assert incremental.kinds == {"sqlmesh", "duckdb"}
    assert incremental.metadata["sqlmesh/model"] == '"db"."sqlmesh_example"."incremental_model"'
    resource = defs.resources["sqlmesh"]
    assert isinstance(resource, SQLMeshResultsResource)
    assert (resource.project_dir, resource.environment) == (str(sqlmesh_project), "prod")


def _scaffold_request(root: Path, project: str) -> dg.ScaffoldRequest:
    target = root / "shop" / "defs" / "warehouse"
    target.mkdir(parents=True)
    return dg.ScaffoldRequest(
        type_name=COMPONENT,
        target_path=target,
        scaffold_format="yaml",
        project_root=root,
        params=SQLMeshProjectScaffoldParams(project=project, environment="dev"),
    )


def test_the_scaffolder_writes_a_path_inside_the_dg_project_from_its_root(tmp_path: Path) -> None:
    inside = _scaffold_request(tmp_path / "inside", str(tmp_path / "inside" / "sqlmesh"))
    SQLMeshProjectScaffolder().scaffold(inside)
    written = yaml.safe_load((inside.target_path / "defs.yaml").read_text())
    assert written == {
        "type": COMPONENT,
        "attributes": {"project": "{{ context.project_root }}/sqlmesh", "environment": "dev"},
    }
    outside = _scaffold_request(tmp_path / "outside", str(tmp_path / "elsewhere"))
    SQLMeshProjectScaffolder().scaffold(outside)
    written = yaml.safe_load((outside.target_path / "defs.yaml").read_text())
    assert written["attributes"]["project"] == str(tmp_path / "elsewhere")


def _project_with_a_broken_model(folder: Path) -> Path:
    """Two models written at test time: `raw.fine` builds, `raw.broken` fails in DuckDB."""
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(DUCKDB_CONFIG)
    (folder / "models" / "fine.sql").write_text("MODEL (name raw.fine, kind FULL);\nSELECT 1 AS n")
    (folder / "models" / "broken.sql").write_text(
        "MODEL (name raw.broken, kind FULL);\nSELECT CAST('abc' AS INT) AS n"
    )
    return folder


def test_yaml_retry_policy_is_each_model_steps_and_retries_a_failing_model(tmp_path: Path) -> None:
    project = _project_with_a_broken_model(tmp_path / "retrying")
    component = SQLMeshProjectComponent.resolve_from_yaml(
        textwrap.dedent(
            f"""\
            project: {project}
            retry_policy:
              max_retries: 1
              delay: 0.1
              backoff: LINEAR
              jitter: PLUS_MINUS
            """
        )
    )
    defs = component_defs(component=component)
    expected = dg.RetryPolicy(
        max_retries=1, delay=0.1, backoff=dg.Backoff.LINEAR, jitter=dg.Jitter.PLUS_MINUS
    )
    for key in ("raw/fine", "raw/broken"):
        assets_def = defs.resolve_assets_def(dg.AssetKey.from_user_string(key))
        assert assets_def.op.retry_policy == expected

    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False
    )
    run = RunOutcome(instance, result.run_id, result.success)
    assert not run.success
    assert [e.step_key for e in run.events("STEP_UP_FOR_RETRY")] == ["raw__broken"]
    assert [e.step_key for e in run.events("STEP_RESTARTED")] == ["raw__broken"]
    assert run.step_statuses() == {"raw__fine": "STEP_SUCCESS", "raw__broken": "STEP_FAILURE"}
    assert set(run.materializations()) == {"raw/fine"}
    assert query(project / "warehouse.duckdb", "SELECT n FROM raw.fine") == [(1,)]


def test_the_readme_component_listing_resolves_every_attribute_it_shows() -> None:
    """The README's "Every attribute" YAML is valid for the component as written (its project
    template aside), retry policy included."""
    from tests.integration.test_readme import readme_blocks

    [listing] = [
        yaml.safe_load(b.code)
        for b in readme_blocks()
        if b.language == "yaml" and "retry_policy:" in b.code and "translation:" in b.code
    ]
    assert listing["type"] == COMPONENT
    attributes = {**listing["attributes"], "project": "/srv/sqlmesh/project"}
    component = SQLMeshProjectComponent.resolve_from_yaml(yaml.safe_dump(attributes))
    assert component.retry_policy == dg.RetryPolicy(
        max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
    assert (
        component.gateway,
        component.select,
        component.partitions,
        component.observe,
        component.automation,
    ) == ("local", ["+marts.*"], False, False, "sensor")
