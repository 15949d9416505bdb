"""Two SQLMesh projects in one code location: two builder calls, or two `dg` component instances.

Both projects are what `sqlmesh init duckdb` generates (made at test time, each folder its own
warehouse and state in its `db.db`), so their model names collide and only a key prefix keeps their
assets apart. One Dagster run selecting every asset must run each project's SQLMesh once, for that
project's models, and every step must say what its own project's SQLMesh did.
"""

from __future__ import annotations

import json
import re
from contextlib import chdir
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.core.component_tree import ComponentTree
from sqlmesh import Context

from mxm_dagster import SQLMeshProjectComponent, SQLMeshTranslator, sqlmesh_definitions
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.records.specs import ModelSpec
from tests.conftest import DUCKDB_CONFIG, RunOutcome, dagster_home, query, run_cli, runs, views
from tests.integration.assets.test_component import _dg, _listed, _sqlmesh_init, _user_dg_project
from tests.support.sqlmesh_state import prod_planned_once, recorded_intervals, written_twice

MODELS = ("seed_model", "incremental_model", "full_model")
_MXM_BLANK = {
    name: ""
    for name in (
        "MXM_SQLMESH_PROJECT",
        "MXM_SQLMESH_GATEWAY",
        "MXM_SQLMESH_ENVIRONMENT",
        "MXM_SQLMESH_PARTITIONS",
    )
}
# A model whose query fails in DuckDB at evaluation, reading the init project's seed.
BROKEN_MODEL = """\
MODEL (name sqlmesh_example.broken, kind FULL);
SELECT CAST('abc' || id AS INT) AS x FROM sqlmesh_example.seed_model
"""

CODE = """\
import dagster as dg

from dagster.components.core.component_tree import ComponentTree

from mxm_dagster import SQLMeshProjectComponent, SQLMeshTranslator, sqlmesh_definitions
from mxm_dagster.common.errors import ProjectLoadError


class Prefixed(SQLMeshTranslator):
    prefix = ""

    def get_asset_key(self, model):
        return super().get_asset_key(model).with_prefix(self.prefix)


class Alpha(Prefixed):
    prefix = "alpha"


class Beta(Prefixed):
    prefix = "beta"


defs = dg.Definitions.merge(
    sqlmesh_definitions({alpha!r}, name="alpha", translator=Alpha),
    sqlmesh_definitions({beta!r}, name="beta", translator=Beta),
)
"""


def _keys(prefix: str, models: tuple[str, ...] = MODELS) -> set[str]:
    return {f"{prefix}/sqlmesh_example/{m}" for m in models}


def _projects(root: Path, broken_beta: bool = False) -> tuple[Path, Path]:
    alpha = _sqlmesh_init(root / "alpha")
    beta = _sqlmesh_init(root / "beta")
    if broken_beta:
        (beta / "models" / "broken.sql").write_text(BROKEN_MODEL)
    return alpha, beta


def _starts(run: RunOutcome, project: Path) -> int:
    """How many SQLMesh executions of `project` the run started (the resource says each)."""
    pattern = re.compile(rf"^Running SQLMesh for .* of {re.escape(str(project.resolve()))}( |$)")
    return sum(1 for message in run.messages() if pattern.match(message))


def _materialize_all(root: Path, alpha: Path, beta: Path) -> RunOutcome:
    """`dagster asset materialize --select '*'` of the two-builder code location, one run."""
    home = dagster_home(root)
    code = root / "two_projects.py"
    code.write_text(CODE.format(alpha=str(alpha), beta=str(beta)))
    env = {"DAGSTER_HOME": str(home), **_MXM_BLANK}
    done = run_cli(
        ["dagster", "asset", "materialize", "-f", str(code), "--select", "*"], env, cwd=root
    )
    (run,) = runs(home)
    run.cli = done  # type: ignore[attr-defined]
    return run


def _prod_models(project: Path) -> dict[str, list[tuple[int, int]]]:
    """What SQLMesh's own state (in the project's db.db) says prod serves, with its intervals.
    From the project folder: the init config's `database: db.db` is relative to the cwd."""
    with chdir(project):
        context = Context(paths=[str(project)])
        try:
            return recorded_intervals(context, "prod")
        finally:
            context.close()


def _results_files(run: RunOutcome) -> list[Path]:
    folder = Path(run.instance.storage_directory()) / "mxm_dagster" / "runs"
    return sorted(folder.glob(f"{run.run_id}-*.json"))


def _assert_served_by_own_sqlmesh(project: Path, models: tuple[str, ...] = MODELS) -> None:
    database = project / "db.db"
    assert {("sqlmesh_example", m) for m in models} <= views(database)
    assert query(database, "SELECT count(*) FROM sqlmesh_example.full_model")[0][0] > 0
    recorded = _prod_models(project)
    assert set(recorded) == {f'"db"."sqlmesh_example"."{m}"' for m in models}
    assert recorded['"db"."sqlmesh_example"."full_model"']  # SQLMesh recorded its interval
    # the project's SQLMesh planned once and evaluated no interval twice
    assert prod_planned_once(database)
    assert not written_twice(database)


# ------------------------------------------------------------------ built in this process


def _prefixed(prefix: str) -> type[SQLMeshTranslator]:
    class Prefixed(SQLMeshTranslator):
        def get_asset_key(self, model: ModelSpec) -> dg.AssetKey:
            return super().get_asset_key(model).with_prefix(prefix)

    return Prefixed


def test_named_projects_get_their_own_resource_sensor_and_steps(tmp_path: Path) -> None:
    alpha, beta = _projects(tmp_path)
    defs = dg.Definitions.merge(
        sqlmesh_definitions(alpha, name="alpha", translator=_prefixed("alpha")),
        sqlmesh_definitions(beta, name="beta", translator=_prefixed("beta")),
    )
    assert set(defs.resources or {}) == {"sqlmesh_alpha", "sqlmesh_beta"}
    assert {s.name for s in defs.sensors or []} == {
        "sqlmesh_alpha_cron",
        "sqlmesh_alpha_observe",
        "sqlmesh_beta_cron",
        "sqlmesh_beta_observe",
    }
    jobs = {job.name for job in defs.get_repository_def().get_all_jobs()}  # node names unique
    assert {"sqlmesh_alpha_plan_preview", "sqlmesh_beta_plan_preview"} <= jobs
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == _keys("alpha") | _keys(
        "beta"
    )
    for prefix in ("alpha", "beta"):
        node = graph.get(dg.AssetKey([prefix, "sqlmesh_example", "full_model"]))
        assert node.assets_def.required_resource_keys - {"io_manager"} == {f"sqlmesh_{prefix}"}


def test_an_unnamed_project_keeps_resource_sqlmesh_and_two_unnamed_ones_clash(
    tmp_path: Path,
) -> None:
    alpha, beta = _projects(tmp_path)
    only = sqlmesh_definitions(alpha)
    assert set(only.resources or {}) == {"sqlmesh"}
    assert [s.name for s in only.sensors or []] == ["sqlmesh_cron", "sqlmesh_observe"]
    assert [job.name for job in only.jobs or []] == ["sqlmesh_plan_preview"]
    assert not sqlmesh_definitions(alpha, plan_preview=False).jobs
    with pytest.raises(dg.DagsterInvariantViolationError, match="same key 'sqlmesh'"):
        dg.Definitions.merge(only, sqlmesh_definitions(beta))
    # named, but the colliding model names give the same keys without a prefix
    same_keys = dg.Definitions.merge(
        sqlmesh_definitions(alpha, name="alpha"), sqlmesh_definitions(beta, name="beta")
    )
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="Duplicate asset key"):
        same_keys.resolve_asset_graph()


# ------------------------------------------------------------------ one run over both


def test_one_run_runs_each_projects_sqlmesh_once_for_its_own_models(tmp_path: Path) -> None:
    alpha, beta = _projects(tmp_path)
    run = _materialize_all(tmp_path, alpha, beta)
    assert run.cli.returncode == 0, run.cli.stderr  # type: ignore[attr-defined]
    assert run.success
    assert set(run.materializations()) == _keys("alpha") | _keys("beta")
    statuses = run.step_statuses()
    assert len(statuses) == 6 and set(statuses.values()) == {"STEP_SUCCESS"}
    # each project's SQLMesh ran once, in its own warehouse and state
    assert _starts(run, alpha) == 1 and _starts(run, beta) == 1
    assert len(_results_files(run)) == 2
    _assert_served_by_own_sqlmesh(alpha)
    _assert_served_by_own_sqlmesh(beta)


def test_a_failing_model_of_one_project_fails_no_step_of_the_other(tmp_path: Path) -> None:
    """In process this time (the CLI run above uses the multiprocess executor): both projects'
    executions run on threads of one process, side by side."""
    alpha, beta = _projects(tmp_path, broken_beta=True)
    defs = dg.Definitions.merge(
        sqlmesh_definitions(alpha, name="alpha", translator=_prefixed("alpha")),
        sqlmesh_definitions(beta, name="beta", translator=_prefixed("beta")),
    )
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    run = RunOutcome(instance, result.run_id, result.success)
    assert not run.success
    statuses = run.step_statuses()
    failed = {step for step, status in statuses.items() if status != "STEP_SUCCESS"}
    assert failed == {"sqlmesh_beta__beta__sqlmesh_example__broken"}
    assert statuses[next(iter(failed))] == "STEP_FAILURE"
    assert "abc" in run.failure_message(next(iter(failed)))  # DuckDB's conversion error
    assert set(run.materializations()) == _keys("alpha") | _keys("beta")
    assert _starts(run, alpha) == 1 and _starts(run, beta) == 1
    _assert_served_by_own_sqlmesh(alpha)
    assert ("sqlmesh_example", "broken") not in views(beta / "db.db")


# ------------------------------------------------------------------ two dg component instances


def test_two_component_instances_in_one_dg_project_launch_together(tmp_path: Path) -> None:
    home = dagster_home(tmp_path)
    alpha, beta = _projects(tmp_path / "elsewhere")
    project = _user_dg_project(tmp_path / "dg")
    for name, folder in (("alpha", alpha), ("beta", beta)):
        defs_dir = project / "shop" / "defs" / name
        defs_dir.mkdir()
        declared = {
            "type": "mxm_dagster.SQLMeshProjectComponent",
            "attributes": {
                "project": str(folder),
                "name": name,
                "translation": {"key_prefix": name},
            },
        }
        (defs_dir / "defs.yaml").write_text(yaml.safe_dump(declared))

    listed = _listed(project, home)
    assets = {a["asset_key"] for a in listed["assets"] if a["is_executable"]}
    assert assets == _keys("alpha") | _keys("beta")
    assert sorted(r["name"] for r in listed["resources"]) == ["sqlmesh_alpha", "sqlmesh_beta"]
    assert sorted(s["name"] for s in listed["sensors"]) == [
        "sqlmesh_alpha_cron",
        "sqlmesh_alpha_observe",
        "sqlmesh_beta_cron",
        "sqlmesh_beta_observe",
    ]

    _dg(["launch", "--assets", "*"], project, home)
    (run,) = runs(home)
    assert run.success
    assert set(run.materializations()) == _keys("alpha") | _keys("beta")
    assert _starts(run, alpha) == 1 and _starts(run, beta) == 1
    _assert_served_by_own_sqlmesh(alpha)
    _assert_served_by_own_sqlmesh(beta)
    assert json.loads(_results_files(run)[0].read_text())  # each file holds its execution


def test_two_components_whose_keys_collide_fail_naming_both_projects_and_the_key(
    tmp_path: Path,
) -> None:
    home = dagster_home(tmp_path)
    alpha, beta = _projects(tmp_path / "elsewhere")
    project = _user_dg_project(tmp_path / "dg")
    for name, folder in (("alpha", alpha), ("beta", beta)):
        defs_dir = project / "shop" / "defs" / name
        defs_dir.mkdir()
        declared = {
            "type": "mxm_dagster.SQLMeshProjectComponent",
            "attributes": {"project": str(folder), "name": name},  # names, but no key prefix
        }
        (defs_dir / "defs.yaml").write_text(yaml.safe_dump(declared))

    env = {"DAGSTER_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "400", **_MXM_BLANK}
    done = run_cli(["dg", "check", "defs"], env, cwd=project)
    assert done.returncode != 0
    said = " ".join((done.stdout + done.stderr).split())  # rich wraps long lines
    assert re.search(r"Asset key sqlmesh_example/\w+ \(and 2 more keys\) comes from two", said)
    assert str(alpha) in said and str(beta) in said
    assert "Duplicate asset key" not in said


def _project(folder: Path, models: dict[str, str], external: bool = False) -> Path:
    """A DuckDB project written here: `models` (file stem -> SQL), `src.events` declared
    external when `external`."""
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(DUCKDB_CONFIG)
    if external:
        declared = "- name: src.events\n  columns:\n    id: int\n"
        (folder / "external_models.yaml").write_text(declared)
    for stem, sql in models.items():
        (folder / "models" / f"{stem}.sql").write_text(sql)
    return folder


def test_colliding_external_tables_and_models_fail_naming_both_projects(tmp_path: Path) -> None:
    """Components of one load: an external table two projects declare, or one project reads as
    external and another builds, fails naming both and what to set; a table both read without
    declaring it (equal source specs) is shared, as Dagster merges equal specs."""
    reads = "MODEL (name {name}, kind FULL);\nSELECT id FROM {table}"
    alpha = _project(
        tmp_path / "alpha",
        {
            "a": reads.format(name="a.reads", table="src.events"),
            "u": reads.format(name="a.undeclared", table="src.other"),
        },
        external=True,
    )
    beta = _project(
        tmp_path / "beta",
        {
            "b": reads.format(name="b.reads", table="src.events"),
            "u": reads.format(name="b.undeclared", table="src.other"),
        },
        external=True,
    )
    gamma = _project(
        tmp_path / "gamma", {"events": "MODEL (name src.events, kind FULL);\nSELECT 1 AS id"}
    )
    delta = _project(tmp_path / "delta", {"d": reads.format(name="d.reads", table="src.other")})

    def load(*projects: tuple[str, Path]) -> dg.Definitions:
        context = ComponentTree.for_test().load_context  # one load: one component tree
        return dg.Definitions.merge(
            *(
                SQLMeshProjectComponent.resolve_from_yaml(
                    yaml.safe_dump({"project": str(folder), "name": name})
                ).build_defs(context)
                for name, folder in projects
            )
        )

    for second in (beta, gamma):
        with pytest.raises(ProjectLoadError) as raised:
            load(("alpha", alpha), ("other", second))
        said = str(raised.value)
        assert said.startswith("Asset key src/events comes from two SQLMesh projects: ")
        assert str(alpha) in said and str(second) in said
        assert "set `external_assets: false` on a component reading it" in said

    shared = load(("alpha", alpha), ("delta", delta)).resolve_asset_graph()
    assert {k.to_user_string() for k in shared.executable_asset_keys} == {
        "a/reads",
        "a/undeclared",
        "d/reads",
    }
    assert not shared.get(dg.AssetKey(["src", "other"])).is_executable
