"""Declarative automation (ADR 17): each model's condition on its SQLMesh cron, evaluated by
Dagster's own evaluator at pinned times, and by the real automation daemon (`dagster-daemon`),
whose tick runs its models in one run and one SQLMesh execution (counted from the Dagster
instance and from SQLMesh's state)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests
from dagster._core.scheduler.instigation import TickStatus
from dagster.components.testing.utils import component_defs

from mxm_dagster import SQLMeshProjectComponent, sqlmesh_definitions
from mxm_dagster.assets.conditions import on_sqlmesh_cron
from tests.conftest import VENV_BIN, dagster_home
from tests.integration.assets.test_automation import KPI, with_monthly_kpi
from tests.integration.run.test_data_versions import EVENTS, TOTALS, write_shop

DAILY = {"raw/numbers", "staging/doubled", "staging/readings", "marts/healthy"}


def requests_at(
    defs: dg.Definitions, instance: dg.DagsterInstance, times: list[datetime]
) -> list[list[dg.RunRequest]]:
    """Dagster's evaluation of the conditions at each pinned time, and the runs the daemon makes
    of each tick's requests (its own grouping, `build_run_requests`)."""
    cursor = None
    ticks = []
    graph = defs.resolve_asset_graph()
    for moment in times:
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=moment, cursor=cursor
        )
        cursor = result.cursor
        subsets = list(result._requested_subsets)  # what the daemon turns into runs
        ticks.append(list(build_run_requests(subsets, graph, {}, emit_backfills=True)))
    return ticks


def selected(request: dg.RunRequest) -> set[str]:
    return {key.to_user_string() for key in request.asset_selection or []}


def test_a_cron_tick_requests_its_due_models_in_one_run(clean_project: Path) -> None:
    """`automation="cron"`: the daily models' midnight tick is one run of exactly them (the
    monthly mart waits for its own cron); no run before the tick, none again after it. The cron
    sensor is then stopped and the project's automation condition sensor runs."""
    project = with_monthly_kpi(clean_project, 3)
    defs = sqlmesh_definitions(project, automation="cron")
    assert defs.resolve_sensor_def("sqlmesh_cron").default_status is dg.DefaultSensorStatus.STOPPED
    automation = defs.resolve_sensor_def("sqlmesh_automation")
    assert isinstance(automation, dg.AutomationConditionSensorDefinition)
    assert automation.default_status is dg.DefaultSensorStatus.RUNNING

    before = datetime(2024, 3, 4, 23, 59, tzinfo=UTC)
    ticks = requests_at(
        defs,
        dg.DagsterInstance.ephemeral(),
        [before, before + timedelta(minutes=2), before + timedelta(minutes=5)],
    )
    assert ticks[0] == []  # the first evaluation only learns the time
    (run,) = ticks[1]
    assert selected(run) == DAILY
    assert KPI not in selected(run)
    assert ticks[2] == []

    first_of_march = datetime(2024, 2, 29, 23, 59, tzinfo=UTC)
    (run,) = requests_at(
        defs, dg.DagsterInstance.ephemeral(), [first_of_march, first_of_march + timedelta(2 / 1440)]
    )[1]
    assert selected(run) == DAILY | {KPI}


def test_the_default_keeps_the_cron_sensor_and_gives_no_conditions(clean_project: Path) -> None:
    defs = sqlmesh_definitions(clean_project)
    assert defs.resolve_sensor_def("sqlmesh_cron").default_status is dg.DefaultSensorStatus.RUNNING
    with pytest.raises(dg.DagsterInvariantViolationError):
        defs.resolve_sensor_def("sqlmesh_automation")
    graph = defs.resolve_asset_graph()
    assert all(
        graph.get(key).automation_condition is None for key in graph.materializable_asset_keys
    )
    with pytest.raises(ValueError, match="automation must be one of"):
        sqlmesh_definitions(clean_project, automation="hourly")  # type: ignore[arg-type]


def test_with_partitions_a_tick_is_one_run_per_partitions_definition(tmp_path: Path) -> None:
    """With time partitions on, the daemon splits a tick by partitions definition and partition:
    the daily-partitioned models' latest partition is one run, the unpartitioned model below
    them another (each one SQLMesh execution). This is Dagster's grouping (ADR 17)."""
    project = write_shop(tmp_path / "shop")  # events, totals: daily-partitioned; slow: FULL
    defs = sqlmesh_definitions(project, automation="cron", partitions=True)
    before = datetime(2026, 11, 9, 23, 59, tzinfo=UTC)
    runs = requests_at(
        defs, dg.DagsterInstance.ephemeral(), [before, before + timedelta(minutes=2)]
    )[1]
    by_partition = {run.partition_key: selected(run) for run in runs}
    assert by_partition == {"2026-11-09": {"shop/events", "shop/totals"}, None: {"shop/slow"}}


def test_the_eager_option_also_runs_models_below_an_updated_one(clean_project: Path) -> None:
    """`automation="cron_or_eager"`: with every model recorded, a tick requests nothing; a new
    materialization of raw/numbers (reported here as one made outside Dagster's runs) makes the
    next tick request every model below it, in one run. With `"cron"` alone the same update
    requests nothing until the next cron tick."""
    noon = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    times = [noon + timedelta(minutes=m) for m in (0, 1, 2)]
    numbers = dg.AssetKey(["raw", "numbers"])
    below = {"staging/doubled", "marts/healthy", KPI}  # staging/readings reads src.readings
    for automation, expected in (("cron_or_eager", below), ("cron", None)):
        defs = sqlmesh_definitions(clean_project, automation=automation)
        graph = defs.resolve_asset_graph()
        instance = dg.DagsterInstance.ephemeral()
        for key in graph.materializable_asset_keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        cursor = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=times[0]
        ).cursor
        quiet = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=times[1], cursor=cursor
        )
        assert quiet.total_requested == 0
        instance.report_runless_asset_event(dg.AssetMaterialization(numbers))
        after = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=times[2], cursor=quiet.cursor
        )
        runs = build_run_requests(list(after._requested_subsets), graph, {}, emit_backfills=True)
        if expected is None:
            assert runs == []
        else:
            (run,) = runs
            assert selected(run) == expected


# --------------------------------------------------------------------------- the real daemon

EXECUTION_TIME = "2026-11-20 06:00:00"
DAEMON_TIMEOUT = 240.0
SUMMARY = dg.AssetKey(["shop", "summary"])
SENSOR_TAG = "dagster/sensor_name"


def daemon_home(tmp_path: Path, project: Path) -> Path:
    """A throwaway DAGSTER_HOME whose automation runs pin SQLMesh's execution time (the
    instance's `auto_materialize.run_tags` go on every run the daemon requests), and a
    workspace whose code location evaluates the conditions every 5 s instead of 30."""
    home = dagster_home(tmp_path)
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_queue:\n  dequeue_interval_seconds: 1\n"
        "auto_materialize:\n"
        f"  run_tags:\n    mxm/execution_time: '{EXECUTION_TIME}'\n"
    )
    (tmp_path / "shop_defs.py").write_text(
        "from mxm_dagster import sqlmesh_definitions\n"
        "from mxm_dagster.assets import conditions\n"
        "conditions.AUTOMATION_INTERVAL_SECONDS = 5\n"
        f"defs = sqlmesh_definitions({str(project)!r}, automation='cron_or_eager')\n"
    )
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: {tmp_path / 'shop_defs.py'}\n"
        "      location_name: shop\n"
    )
    return home


def automation_ticks(instance: dg.DagsterInstance) -> list:
    """The ticks the daemon recorded for the project's automation condition sensor."""
    for state in instance.all_instigator_state():
        if state.name == "sqlmesh_automation":
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return []


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def state_interval_writes(project: Path) -> list[tuple[str, int]]:
    """Every interval record in SQLMesh's state: (model, when SQLMesh wrote it, epoch ms)."""
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute("SELECT name, created_ts FROM sqlmesh._intervals").fetchall()
    return [(name, int(created)) for name, created in rows]


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_automation_daemon_runs_a_ticks_models_in_one_sqlmesh_execution(
    tmp_path: Path,
) -> None:
    """A real `dagster-daemon` over the shop project (events; totals reads it; summary reads
    totals) with `automation="cron_or_eager"`. After its first tick, a run materializes events;
    the daemon's next tick requests totals and summary (below it) together: one Dagster run,
    every materialization in it from one SQLMesh execution, and every interval record SQLMesh's
    state holds for those two models written during that run."""
    project = write_shop(tmp_path / "shop", slow=False)
    (project / "models" / "summary.sql").write_text(
        "MODEL (name shop.summary, kind FULL, cron '@daily', start '2026-11-01');\n"
        "SELECT SUM(n) AS n FROM shop.totals\n"
    )
    home = daemon_home(tmp_path, project)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("MXM_SQLMESH_PROJECT", None)
    log_path = tmp_path / "daemon.log"
    instance = dg.DagsterInstance.from_config(str(home))  # its storage exists before the daemon's
    instance.get_run_records(limit=1)
    daemon = subprocess.Popen(
        [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("w"),
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any(t.status != TickStatus.STARTED for t in automation_ticks(instance)),
            DAEMON_TIMEOUT,
            "the first automation tick to end",
        )
        defs = sqlmesh_definitions(project)
        upstream = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            asset_selection=[EVENTS],
            run_config={"resources": {"sqlmesh": {"config": {"execution_time": EXECUTION_TIME}}}},
            instance=instance,
        )
        assert upstream.success

        def automation_runs() -> list[dg.DagsterRun]:
            return [
                r.dagster_run
                for r in instance.get_run_records()
                if r.dagster_run.tags.get(SENSOR_TAG) == "sqlmesh_automation"
            ]

        wait_for(
            lambda: automation_runs() and all(r.is_finished for r in automation_runs()),
            DAEMON_TIMEOUT,
            "the automation run",
        )
        runs = automation_runs()
        launched = [t.run_ids for t in automation_ticks(instance) if t.run_ids]
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    log = log_path.read_text()[-3000:]
    assert len(runs) == 1, log
    (run,) = runs
    assert launched == [[run.run_id]]  # the daemon's own record: one tick, one run
    assert run.is_success, log
    assert run.tags["mxm/execution_time"] == EXECUTION_TIME
    assert set(run.asset_selection or []) == {TOTALS, SUMMARY}

    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.start_time and record.end_time
    materializations = [
        e.asset_materialization
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    ]
    instance.dispose()
    assert {m.asset_key for m in materializations if m} == {TOTALS, SUMMARY}
    assert len({m.metadata["sqlmesh/execution_id"].value for m in materializations if m}) == 1

    written = [
        created
        for name, created in state_interval_writes(project)
        if name in ('"warehouse"."shop"."totals"', '"warehouse"."shop"."summary"')
    ]
    assert written
    assert all(record.start_time * 1000 <= t <= record.end_time * 1000 for t in written), (
        written,
        record.start_time,
        record.end_time,
    )


def test_the_component_takes_the_automation_attribute(clean_project: Path) -> None:
    """`automation: cron_or_eager` in defs.yaml: conditions on the models, the automation
    condition sensor running and the cron sensor stopped, as from Python."""
    component = SQLMeshProjectComponent.resolve_from_yaml(
        f"project: {clean_project}\nname: shop\nautomation: cron_or_eager\n"
    )
    defs = component_defs(component=component)
    assert (
        defs.resolve_sensor_def("sqlmesh_shop_cron").default_status
        is dg.DefaultSensorStatus.STOPPED
    )
    sensor = defs.resolve_sensor_def("sqlmesh_shop_automation")
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    condition = graph.get(dg.AssetKey(["marts", "healthy"])).automation_condition
    assert condition is not None and "upstream changed" in str(condition)


def test_on_sqlmesh_cron_does_not_wait_for_upstream_assets() -> None:
    """Unlike Dagster's `on_cron`, an external upstream that never updates does not hold a
    model back: the condition has no `all_deps_updated_since_cron` part."""
    condition = on_sqlmesh_cron("0 0 * * *")
    labels = {c.get_label() or c.name for c in condition.children}
    assert not any("deps" in label for label in labels), labels
