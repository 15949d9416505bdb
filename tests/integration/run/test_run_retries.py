"""Run retries through Dagster's own daemon: the retry run re-runs only what did not succeed.

A real `dagster dev` whose instance has `run_retries: {enabled: true}` serves the flaky project of
tests/integration/run/test_retries.py (`staging.flaky` fails on its first evaluation only,
`marts.after_flaky` reads it). A run launched over GraphQL with `dagster/max_retries: 1` fails; the
daemon's run retry (strategy FROM_FAILURE, the default) launches a new run of the failed step and
the one it kept from running, and SQLMesh in that run evaluates those two models and nothing
else."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import query, views
from tests.e2e.dagster_dev import DagsterDev, project_model_names, save_log
from tests.integration.run.test_retries import (
    AFTER_FLAKY,
    AFTER_FLAKY_STEP,
    FLAKY,
    FLAKY_DIR,
    FLAKY_STEP,
    evaluated,
    executions,
    flaky_project,
    selected,
    statuses,
)

pytestmark = pytest.mark.timeout(600)

RUN_RETRIES = "run_retries:\n  enabled: true\n"
PARENT_TAG = "dagster/parent_run_id"
RETRY_APPEARS_SECONDS = 120  # the daemon looks at failed runs every 5 s; the machine is busy


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def retry_of(dev: DagsterDev, run_id: str, timeout: float) -> dict | None:
    """The run Dagster launched as a retry of `run_id`, None if none appeared within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in dev.runs():
            if tags(run).get(PARENT_TAG) == run_id:
                return run
        time.sleep(1)
    return None


def step_statuses(run: dict) -> dict[str, str]:
    return {s["stepKey"]: s["status"] for s in run["stepStats"]}


@pytest.mark.e2e
def test_the_run_retry_daemon_reruns_only_the_failed_model_and_downstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker_dir = tmp_path / "flaky_marker"
    marker_dir.mkdir()
    monkeypatch.setenv(FLAKY_DIR, str(marker_dir))  # dagster dev passes it on to the SQLMesh child
    project = flaky_project(tmp_path / "flaky")
    warehouse = project / "warehouse.duckdb"
    dev = DagsterDev(project, tmp_path / "dev", instance_settings=RUN_RETRIES)
    try:
        dev.start()
        dev.wait_until_loaded()
        nodes = [n for n in dev.asset_nodes().values() if n.materializable]
        first_id = dev.launch_assets(nodes, tags={"dagster/max_retries": "1"})
        assert dev.wait_for_run(first_id, 240) == "FAILURE", dev.run_errors(first_id)
        retry = retry_of(dev, first_id, RETRY_APPEARS_SECONDS)
        assert retry is not None, f"no retry run of {first_id}: {dev.runs()}"
        retry_id = retry["runId"]
        assert dev.wait_for_run(retry_id, 240) == "SUCCESS", dev.run_errors(retry_id)
        first, again = dev.run(first_id), dev.run(retry_id)
        retry_materializations = dev.run_materializations(retry_id)
    except BaseException:
        save_log(dev, "run_retries")
        raise
    finally:
        dev.stop()

    # Dagster: the original failed at the flaky model; its retry is the daemon's, from failure
    first_steps = step_statuses(first)
    assert first_steps[FLAKY_STEP] == "FAILURE"
    assert first_steps.get(AFTER_FLAKY_STEP, "NOT_EXECUTED") != "SUCCESS"
    succeeded_first = {step for step, status in first_steps.items() if status == "SUCCESS"}
    assert succeeded_first, first_steps  # the other models did succeed in the first run
    assert tags(first)["dagster/auto_retry_run_id"] == retry_id
    assert again["parentRunId"] == first_id
    assert tags(again)["dagster/retry_number"] == "1"
    assert set(again["stepKeysToExecute"]) == {FLAKY_STEP, AFTER_FLAKY_STEP}
    assert step_statuses(again) == {FLAKY_STEP: "SUCCESS", AFTER_FLAKY_STEP: "SUCCESS"}

    # SQLMesh: one execution per run; the retry's evaluated the two models and nothing else
    (in_first,) = executions(dev.home, first_id)
    assert statuses(in_first)[FLAKY] == "failed"
    assert statuses(in_first)[AFTER_FLAKY] == "skipped"
    assert '"warehouse"."raw"."numbers"' in evaluated(in_first)
    (in_retry,) = executions(dev.home, retry_id)
    assert selected(in_retry) == evaluated(in_retry) == {FLAKY, AFTER_FLAKY}
    retried_keys = {m.key for m in retry_materializations}
    assert retried_keys == {("staging", "flaky"), ("marts", "after_flaky")}
    assert {m.metadata["sqlmesh/execution_id"] for m in retry_materializations} == {
        in_retry["execution_id"]
    }

    # The warehouse: every model's view, the flaky chain's with its data
    expected = {tuple(name.split(".")) for name in project_model_names(project)}
    assert expected <= views(warehouse)
    assert query(warehouse, "SELECT s FROM marts.after_flaky") == [(385,)]  # 1² + ... + 10²
