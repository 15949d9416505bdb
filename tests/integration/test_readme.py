"""The README works as written: its ```bash blocks run from the repo root, top to bottom, against
a copy of the reference project; its ```python blocks run in a subprocess; its run config is valid.

A block the suite cannot run carries `<!-- not run by tests/integration/test_readme.py: why -->` on
the line right above its fence. The second half checks what the README promises of run config:
restatement and SQLMesh's execution time from the CLI (`--config-json`) and from Python."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mxm_dagster.child.project import opened_context
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import (
    REFERENCE_PROJECT,
    REPO,
    RunOutcome,
    copy_project,
    dagster_home,
    definitions_for,
    environment,
    materialize,
    query,
    run_cli,
    runs,
    views,
)
from tests.support.sqlmesh_state import recorded_intervals

README = REPO / "README.md"
MARKER = "not run by tests/integration/test_readme.py"
_MARKER_LINE = re.compile(rf"^<!-- {re.escape(MARKER)}: (?P<reason>\S.*\S) -->$")
_FENCE = re.compile(r"^```(?P<language>[\w-]*)\s*$")
# What starts a Dagster run in a block; each must leave one successful run in DAGSTER_HOME.
_RUN_STARTERS = ("asset materialize", "make run", "job execute")
_CONFIG_JSON = re.compile(r"--config-json '(?P<json>[^']*)'")
BLOCK_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    not_run_reason: str | None


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, with the reason of the marker right above it, if any."""
    lines = README.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next(j for j in range(index + 1, len(lines)) if lines[j].startswith("```"))
        marker = _MARKER_LINE.match(lines[index - 1].strip()) if index else None
        blocks.append(
            Block(
                language=fence["language"],
                code="\n".join(lines[index + 1 : end]) + "\n",
                line=index + 1,
                not_run_reason=marker["reason"] if marker else None,
            )
        )
        index = end + 1
    return blocks


def _runnable(language: str) -> list[Block]:
    return [b for b in readme_blocks() if b.language == language and b.not_run_reason is None]


def _block_id(block: Block) -> str:
    return f"README.md:{block.line}"


@dataclass
class Workspace:
    """What a user on a fresh clone has: the repo, a warehouse of their own, a Dagster home."""

    project: Path
    home: Path
    env: dict[str, str]

    @property
    def warehouse(self) -> Path:
        return self.project / "justetf.duckdb"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A copy of the reference project (the repo's own warehouse stays untouched) and a Dagster
    home, shared by the blocks in README order, as a reader runs them."""
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO).returncode != 0:
        pytest.fail(
            "The README's commands use the repo's .venv, which is missing or older than "
            "pyproject.toml: run `make setup` (make test does); a test never builds it"
        )
    tmp = tmp_path_factory.mktemp("readme")
    project = copy_project(REFERENCE_PROJECT, tmp / "justetf")
    home = dagster_home(tmp)
    return Workspace(project, home, environment(project, home))


def _run(workspace: Workspace, command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, **workspace.env},
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_SECONDS,
    )


def _expected_runs(code: str) -> int:
    return sum(code.count(starter) for starter in _RUN_STARTERS)


def _resource_config(run: RunOutcome) -> dict[str, object]:
    """The run config the run was given for the resource key `sqlmesh`."""
    dagster_run = run.instance.get_run_by_id(run.run_id)
    assert dagster_run is not None
    return dagster_run.run_config.get("resources", {}).get("sqlmesh", {}).get("config", {})


def _assert_runs_did_what_they_say(workspace: Workspace, before: int, code: str) -> None:
    """Each command that starts a Dagster run left one successful run; a restating run
    recomputed every model it materialized, and restated every selected one (an upstream model
    it only filled says it was not restated); a run with an execution time evaluated no interval
    ending after it (test_the_readme_config_json_commands_reach_the_resource_sqlmesh shows one
    on a fresh warehouse)."""
    new_runs = runs(workspace.home)[before:]
    assert len(new_runs) == _expected_runs(code)
    for run in new_runs:
        assert run.success, run.messages()[-10:]
        config = _resource_config(run)
        if config.get("restate"):
            outcomes = run.materializations().values()
            assert outcomes
            assert all(m["sqlmesh/outcome"] == "evaluated" for m in outcomes)
            assert all(m["sqlmesh/restated"] is True for m in outcomes if m["sqlmesh/selected"])
        if isinstance(execution_time := config.get("execution_time"), str):
            outcomes = _model_materializations(run).values()
            assert outcomes
            ends = [_epoch_ms(end) for m in outcomes for _start, end in m["sqlmesh/intervals"]]
            assert all(end <= _epoch_ms(execution_time) for end in ends)


def _assert_make_run_showed_the_warehouse(workspace: Workspace, stdout: str) -> None:
    """`make run` builds every model's view in the copy and lists them with row counts."""
    spec = SQLMeshProject(path=workspace.project).load_spec()
    model_views = {(m.schema, m.table) for m in spec.models if m.is_model and m.kind != "EMBEDDED"}
    assert model_views and model_views <= views(workspace.warehouse)
    assert f"Warehouse (DuckDB): {workspace.warehouse}" in stdout
    for schema, table in model_views:
        assert re.search(rf"{schema}\.{table}\s+\d+ rows", stdout), (schema, table)


def test_every_not_run_marker_sits_right_above_a_block_and_says_why() -> None:
    lines = README.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if MARKER in line:
            assert _MARKER_LINE.match(line.strip()), f"README.md:{number} malformed: {line}"
            assert number < len(lines) and _FENCE.match(lines[number]), f"README.md:{number}"
    skipped = [b for b in readme_blocks() if b.not_run_reason]
    assert all(b.language == "bash" for b in skipped)
    assert len(_runnable("bash")) > len(skipped)


@pytest.mark.parametrize("block", _runnable("bash"), ids=_block_id)
def test_bash_block_runs_as_written(block: Block, workspace: Workspace) -> None:
    before = len(runs(workspace.home))
    done = _run(workspace, ["bash", "-e", "-o", "pipefail", "-c", block.code])
    assert done.returncode == 0, f"{block.code}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    _assert_runs_did_what_they_say(workspace, before, block.code)
    if "make run" in block.code:
        _assert_make_run_showed_the_warehouse(workspace, done.stdout)


# Appended to the Python block they name: what it says it does (its runs are not in DAGSTER_HOME).
_PYTHON_CHECKS = {
    "execute_in_process(": (
        "mats = [e.materialization for e in result.get_asset_materialization_events()]\n"
        "assert mats and all(m.metadata['sqlmesh/outcome'].value == 'evaluated'"
        " for m in mats), mats\n"
        "assert all(m.metadata['sqlmesh/restated'].value for m in mats"
        " if m.metadata['sqlmesh/selected'].value), mats\n"
    ),
    "class MyTranslator": (
        "groups = {s.group_name for s in defs.resolve_all_asset_specs()"
        " if s.metadata.get('sqlmesh/model') and s.metadata.get('sqlmesh/kind') != 'EXTERNAL'}\n"
        "assert groups == {'warehouse'}, groups\n"
    ),
    "class Ops(SQLMeshTranslator)": (
        "import dagster as dg\n"
        "from mxm_dagster.records.specs import ModelSpec, LoadedModels\n"
        "spec = LoadedModels(default_catalog=None, dialect='duckdb', engine='duckdb', models=())\n"
        "m = ModelSpec(name='s.m', catalog=None, schema='s', table='m', kind='FULL',"
        " cron='@daily', tags=('hourly_refresh',))\n"
        "ops = Ops(spec, freshness=True)\n"
        "assert ops.get_freshness_policy(m) == dg.FreshnessPolicy.cron("
        "deadline_cron='30 0 * * *', lower_bound_delta=timedelta(minutes=30))\n"
        "assert isinstance(ops.get_automation_condition(m), dg.AutomationCondition)\n"
    ),
}


@pytest.mark.parametrize("block", _runnable("python"), ids=_block_id)
def test_python_block_runs_as_written(block: Block, workspace: Workspace) -> None:
    checks = "".join(c for marker, c in _PYTHON_CHECKS.items() if marker in block.code)
    assert checks, "say in _PYTHON_CHECKS what this block does"
    if not workspace.warehouse.exists():
        pytest.fail("The README's Python blocks follow `make run`: run the bash blocks first")
    done = _run(workspace, [sys.executable, "-c", block.code + checks])
    assert done.returncode == 0, f"{block.code}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_every_run_config_in_the_readme_is_valid(clean_project: Path) -> None:
    """The launchpad YAML and every `--config-json` (in a block or in the text) fit the job."""
    job = definitions_for(clean_project).resolve_implicit_global_asset_job_def()
    configs = [yaml.safe_load(b.code) for b in readme_blocks() if b.language == "yaml"]
    run_configs = [c for c in configs if isinstance(c, dict) and "resources" in c]
    assert len(run_configs) >= 2
    config_jsons = [json.loads(m["json"]) for m in _CONFIG_JSON.finditer(README.read_text())]
    assert len(config_jsons) >= 4  # restate, execution_time, unit tests, a partition range
    run_configs += config_jsons
    for run_config in run_configs:
        dg.validate_run_config(job, run_config)
    with pytest.raises(dg.DagsterInvalidConfigError):  # the check can fail
        dg.validate_run_config(job, {"resources": {"sqlmesh": {"config": {"tags": {}}}}})


def test_every_config_json_example_in_a_block_is_run_as_written() -> None:
    """test_bash_block_runs_as_written runs each: none may sit in a block marked not run."""
    in_blocks = [c for b in readme_blocks() for c in _CONFIG_JSON.findall(b.code)]
    runnable = [c for b in _runnable("bash") for c in _CONFIG_JSON.findall(b.code)]
    assert len(in_blocks) >= 3 and runnable == in_blocks


# ---------------------------------------------------------------- run config, as the README says


def _sqlmesh_config(**config: object) -> str:
    return json.dumps({"resources": {"sqlmesh": {"config": config}}})


def _materialize_cli(env: dict[str, str], selection: str, *extra: str) -> None:
    done = run_cli(
        ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions", "--select", selection]
        + list(extra),
        env,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _recorded_intervals(project: Path) -> dict[str, list[tuple[int, int]]]:
    with opened_context(SQLMeshProject(path=project)) as context:
        return recorded_intervals(context, "prod")


def _readings_total(project: Path) -> float:
    return query(project / "warehouse.duckdb", "SELECT sum(value) FROM staging.readings")[0][0]


def _scale_source_readings(project: Path) -> None:
    """The external source changes after it was read: only a recomputation picks that up."""
    import duckdb

    with duckdb.connect(str(project / "warehouse.duckdb")) as connection:
        connection.execute("UPDATE src.readings SET value = value * 10")


def _midnight_after(days: int) -> tuple[str, int]:
    """An execution time `days` from now, and the end (epoch ms) of the last daily interval
    complete by then."""
    moment = datetime.now(UTC) + timedelta(days=days)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.strftime("%Y-%m-%d %H:%M:%S"), int(midnight.timestamp() * 1000)


READINGS = '"warehouse"."staging"."readings"'
NUMBERS = '"warehouse"."raw"."numbers"'


def test_cli_restate_through_config_json_recomputes_filled_intervals(
    clean_project: Path, tmp_path: Path
) -> None:
    home = dagster_home(tmp_path)
    assert materialize(clean_project).success
    before_total = _readings_total(clean_project)
    before_intervals = _recorded_intervals(clean_project)[READINGS]
    _scale_source_readings(clean_project)
    plain = materialize(clean_project, ["staging/readings"])  # filled already: not recomputed
    assert plain.materializations()["staging/readings"]["sqlmesh/outcome"] == "up_to_date"
    assert _readings_total(clean_project) == before_total

    _materialize_cli(
        environment(clean_project, home),
        "staging/readings",
        "--config-json",
        _sqlmesh_config(restate=True),
    )

    assert _readings_total(clean_project) == pytest.approx(before_total * 10)
    assert before_intervals and _recorded_intervals(clean_project)[READINGS] == before_intervals
    (restated,) = runs(home)
    meta = restated.materializations()["staging/readings"]
    assert meta["sqlmesh/outcome"] == "evaluated" and meta["sqlmesh/restated"] is True


def test_cli_execution_time_through_config_json_fills_up_to_that_time(
    clean_project: Path, tmp_path: Path
) -> None:
    """Two days ahead, the daily interval that ends that midnight is due and filled, none later.
    (A FULL model records only the interval it last evaluated: SQLMesh recomputes all of it.)"""
    assert materialize(clean_project, ["raw/numbers"]).success
    (by_the_clock,) = _recorded_intervals(clean_project)[NUMBERS]
    execution_time, last_end = _midnight_after(days=2)

    _materialize_cli(
        environment(clean_project, dagster_home(tmp_path)),
        "raw/numbers",
        "--config-json",
        _sqlmesh_config(execution_time=execution_time),
    )

    assert _recorded_intervals(clean_project)[NUMBERS][-1][1] == last_end
    assert last_end - by_the_clock[1] == 2 * 86_400_000


def test_python_run_config_restates_and_its_execution_time_wins_over_the_tag(
    clean_project: Path,
) -> None:
    """Schedules and sensors set the tag; run config of the same run overrides it."""
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(clean_project, instance=instance).success
    before_total = _readings_total(clean_project)
    _scale_source_readings(clean_project)
    execution_time, last_end = _midnight_after(days=1)
    tag_time, _ = _midnight_after(days=3)

    result = materialize(
        clean_project,
        ["staging/readings", "raw/numbers"],
        instance,
        tags={"mxm/execution_time": tag_time},
        resource_config={"restate": True, "execution_time": execution_time},
    )

    assert result.success
    assert _readings_total(clean_project) == pytest.approx(before_total * 10)
    assert _recorded_intervals(clean_project)[NUMBERS][-1][1] == last_end
    meta = result.materializations()["staging/readings"]
    assert meta["sqlmesh/outcome"] == "evaluated" and meta["sqlmesh/restated"] is True


def _config_json_commands() -> dict[str, str]:
    """The README's two `--config-json` commands of "From the command line", as written (one
    line each, comment dropped), by the option they set: `restate` and `execution_time`."""
    commands: dict[str, str] = {}
    for block in _runnable("bash"):
        for line in block.code.replace("\\\n", " ").splitlines():
            found = _CONFIG_JSON.search(line)
            if found is None or "--partition" in line:
                continue
            (option,) = json.loads(found["json"])["resources"]["sqlmesh"]["config"]
            commands[option] = line.split("#")[0].strip()
    return commands


def _model_materializations(run: RunOutcome) -> dict[str, dict[str, object]]:
    return {k: m for k, m in run.materializations().items() if "sqlmesh/outcome" in m}


def _epoch_ms(iso: str) -> int:
    """Epoch ms of an ISO time; one without a zone is UTC, as SQLMesh takes `execution_time`."""
    moment = datetime.fromisoformat(iso)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def test_the_readme_config_json_commands_reach_the_resource_sqlmesh(tmp_path: Path) -> None:
    """Run config is keyed by the resource key `sqlmesh`, not by the resource's class name: the
    README's commands, as written, on a fresh copy of the reference project, do what it says.

    `execution_time`: on a fresh warehouse every model is filled up to the last daily interval due
    by then and no further (by the clock it would be filled up to today). `restate`: a model
    already filled is recomputed, and SQLMesh records no new interval for it.
    """
    commands = _config_json_commands()
    assert set(commands) == {"restate", "execution_time"}
    project = copy_project(REFERENCE_PROJECT, tmp_path / "justetf")
    home = dagster_home(tmp_path)
    workspace = Workspace(project, home, environment(project, home))

    def run_as_written(command: str) -> RunOutcome:
        done = _run(workspace, ["bash", "-e", "-o", "pipefail", "-c", command])
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        run = runs(home)[-1]
        assert run.success, run.messages()[-10:]
        return run

    execution_time = _CONFIG_JSON.search(commands["execution_time"])["json"]  # type: ignore[index]
    moment = json.loads(execution_time)["resources"]["sqlmesh"]["config"]["execution_time"]
    as_of = _epoch_ms(moment)
    assert as_of < _epoch_ms(datetime.now(UTC).strftime("%Y-%m-%d 00:00:00"))  # before today

    by_then = run_as_written(commands["execution_time"])
    mats = _model_materializations(by_then)
    assert mats and {m["sqlmesh/outcome"] for m in mats.values()} == {"evaluated"}
    ends = [
        _epoch_ms(end)
        for m in mats.values()
        for _start, end in m["sqlmesh/intervals"]  # type: ignore[union-attr]
    ]
    assert ends and max(ends) == as_of
    state = _recorded_intervals(project)
    assert state and max(i[1] for intervals in state.values() for i in intervals) == as_of
    quotes = next(name for name in state if name.endswith('"stg_daily_quotes"'))
    assert state[quotes][-1][1] == as_of  # incremental: every day up to then, none after

    risk_metrics = commands["restate"].split(" --config-json")[0]  # the README's line above it
    run_as_written(risk_metrics)
    filled = _recorded_intervals(project)
    restated = run_as_written(commands["restate"])
    meta = _model_materializations(restated)["marts/risk_metrics"]
    assert meta["sqlmesh/outcome"] == "evaluated" and meta["sqlmesh/restated"] is True
    model = next(name for name in filled if name.endswith('"risk_metrics"'))
    assert _recorded_intervals(project)[model] == filled[model]
