"""Asset keys come from the definitions being run, never from what a process built before.

SQLMesh may evaluate models outside a run's selection (a fresh warehouse: the selection's upstream
models); the step that records them names them by the keys of the definitions the run came from,
as the translator of those definitions made them. Checked on the Dagster instance's
materialization events and on SQLMesh's warehouse, in process, under the multiprocess executor,
and with two code locations built in one process.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg

from mxm_dagster import SQLMeshTranslator, sqlmesh_definitions
from mxm_dagster.records.specs import ModelSpec
from tests.conftest import (
    FAULTY_MODELS,
    FIXTURE_PROJECT,
    RunOutcome,
    copy_project,
    dagster_home,
    environment,
    run_cli,
    runs,
    seed_external_source,
    views,
)

#: The fixture's marts/healthy reads staging/doubled, which reads raw/numbers.
SELECTED = ("marts", "healthy")
BUILT_WITH_IT = [("marts", "healthy"), ("raw", "numbers"), ("staging", "doubled")]


def prefixed(prefix: str) -> type[SQLMeshTranslator]:
    class Prefixed(SQLMeshTranslator):
        def get_asset_key(self, model: ModelSpec) -> dg.AssetKey:
            return super().get_asset_key(model).with_prefix(prefix)

    return Prefixed


def _project(tmp_path: Path, name: str) -> Path:
    project = copy_project(FIXTURE_PROJECT, tmp_path / name, drop=FAULTY_MODELS)
    seed_external_source(project)
    return project


def _run_subset(defs: dg.Definitions, key: dg.AssetKey, instance: dg.DagsterInstance) -> RunOutcome:
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(asset_selection=[key], instance=instance, raise_on_error=False)
    return RunOutcome(instance, result.run_id, result.success)


def _recorded(run: RunOutcome) -> list[tuple[str, ...]]:
    return sorted(
        tuple(e.event_specific_data.materialization.asset_key.path)
        for e in run.events("ASSET_MATERIALIZATION")
    )


def _promoted(project: Path) -> set[tuple[str, str]]:
    return views(project / "warehouse.duckdb")


def test_a_custom_translators_keys_name_the_models_outside_a_subset_run(tmp_path: Path) -> None:
    project = _project(tmp_path, "custom")
    defs = sqlmesh_definitions(project, translator=prefixed("custom"))
    instance = dg.DagsterInstance.ephemeral()
    run = _run_subset(defs, dg.AssetKey(["custom", *SELECTED]), instance)
    assert run.success
    assert _recorded(run) == [("custom", *key) for key in BUILT_WITH_IT]
    assert {("raw", "numbers"), ("staging", "doubled"), SELECTED} <= _promoted(project)
    assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "numbers"])) is None


def test_two_definitions_of_one_project_each_name_their_own_keys(tmp_path: Path) -> None:
    """The same folder behind two translators in one process: the run of the first built names
    the models beyond its selection with its own keys, not those of the last built."""
    project = _project(tmp_path, "shared")
    first = sqlmesh_definitions(project, translator=prefixed("first"))
    sqlmesh_definitions(project, translator=prefixed("second"))  # built last
    run = _run_subset(first, dg.AssetKey(["first", *SELECTED]), dg.DagsterInstance.ephemeral())
    assert run.success
    assert _recorded(run) == [("first", *key) for key in BUILT_WITH_IT]


def test_two_code_locations_in_one_process_each_run_names_its_own_keys(tmp_path: Path) -> None:
    projects = {name: _project(tmp_path, name) for name in ("east", "west")}
    locations = {
        name: sqlmesh_definitions(project, translator=prefixed(name))
        for name, project in projects.items()
    }  # both loaded before either runs, as one process serving two code locations would
    instance = dg.DagsterInstance.ephemeral()
    for name, defs in locations.items():
        run = _run_subset(defs, dg.AssetKey([name, *SELECTED]), instance)
        assert run.success
        assert _recorded(run) == [(name, *key) for key in BUILT_WITH_IT]
        assert SELECTED in _promoted(projects[name])


DEFINITIONS_MODULE = textwrap.dedent(
    """
    import os

    import dagster as dg

    from mxm_dagster import SQLMeshTranslator, sqlmesh_definitions
    from mxm_dagster.code_location import executor_from_env


    class Prefixed(SQLMeshTranslator):
        def get_asset_key(self, model):
            return super().get_asset_key(model).with_prefix("custom")


    defs = dg.Definitions.merge(
        sqlmesh_definitions(os.environ["MXM_SQLMESH_PROJECT"], translator=Prefixed),
        dg.Definitions(executor=executor_from_env()),
    )
    """
)


def test_a_custom_translators_keys_under_the_multiprocess_executor(tmp_path: Path) -> None:
    """Every step is its own process, which builds the definitions again: the step that ran
    SQLMesh names the upstream models it recorded by the custom keys."""
    project = _project(tmp_path, "custom")
    module = tmp_path / "custom_definitions.py"
    module.write_text(DEFINITIONS_MODULE)
    home = dagster_home(tmp_path)
    done = run_cli(
        ["dagster", "asset", "materialize", "-f", str(module), "--select", "custom/marts/healthy"],
        environment(project, home, MXM_DAGSTER_EXECUTOR="multiprocess"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs(home)
    assert run.success
    (step,) = run.events("STEP_START")  # one step, in a process of its own
    assert step.pid != run.events(dg.DagsterEventType.RUN_START.value)[0].pid
    assert _recorded(run) == [("custom", *key) for key in BUILT_WITH_IT]
    assert {("raw", "numbers"), ("staging", "doubled"), SELECTED} <= _promoted(project)
