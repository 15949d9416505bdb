"""The two ways one step runs: raw SQLMesh's Python API on one twin, a Dagster run of the code
location on the other. Both see the same folder contents and the same execution time."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from sqlmesh import Context

from mxm_dagster.code_location import build_definitions
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conformance.steps import Step
from tests.conftest import run_cli


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run with cwd = the project folder, as a user runs `sqlmesh` (relative paths in models and
    in config.yaml resolve against it)."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def sqlmesh_context(folder: Path, load: bool = True) -> Iterator[Context]:
    """A Context on the twin, closed afterwards: DuckDB allows one writer process per file."""
    with inside(folder):
        context = Context(paths=str(folder), load=load)
        try:
            yield context
        finally:
            context.close()


def run_raw(folder: Path, step: Step) -> str | None:
    """The step through raw SQLMesh; returns the error of a failed plan or run (raw SQLMesh's
    outcome, which the comparison then holds the code location to), else None."""
    select = list(step.select) or None
    try:
        with sqlmesh_context(folder) as context:
            if step.command == "run":
                status = context.run(step.environment, execution_time=step.at, select_models=select)
                return None if status.is_success else f"run ended {status}"
            options: dict[str, Any] = {}
            if step.restate:
                options["restate_models"] = list(step.select)
                if step.window_bounds():
                    options["start"], options["end"] = step.window_bounds()
            context.plan(
                step.environment,
                execution_time=step.at,
                select_models=None if step.restate else select,
                # what a user types: `sqlmesh plan --run` in prod, `sqlmesh plan dev` in dev
                # (`--run` is "prod environment only" in the CLI's help). With the execution
                # time explicit, SQLMesh 0.236.4 fills a dev plan up to it either way (measured:
                # the same intervals with and without run); at the wall clock without
                # --execution-time it would stop at prod's end (docs/adr/0007)
                run=step.environment == "prod",
                auto_apply=True,
                no_prompts=True,
                **options,
            )
    except Exception as exc:  # noqa: BLE001 - a failed plan is raw SQLMesh's outcome
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class DagsterTwin:
    """The code location on the Dagster twin, recorded in one instance for the whole scenario."""

    folder: Path
    home: Path

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        self.definitions: dg.Definitions | None = None  # of the last run, for partition windows
        self._partitions = False

    def run(self, step: Step) -> str:
        """One Dagster run of the step; returns its run id."""
        if step.cli:
            return self._run_cli(step)
        try:
            defs = build_definitions(SQLMeshProject(path=self.folder), partitions=step.partitions)
        except Exception as exc:  # noqa: BLE001 - the code location did not load: a divergence
            raise NoRun(f"the code location did not load: {type(exc).__name__}: {exc}") from exc
        keys = [asset_key(name) for name in step.select] or None
        if keys is None:
            job = defs.resolve_implicit_global_asset_job_def()
        else:
            job = defs.resolve_implicit_job_def_def_for_assets(keys)  # type: ignore[attr-defined]
        self.definitions = defs
        result = job.execute_in_process(
            asset_selection=keys,
            instance=self.instance,
            run_config=self.run_config(step),
            tags=self.partition_tags(step),
            raise_on_error=False,
        )
        return result.run_id

    def partition_window(self, key: dg.AssetKey, partition: str) -> tuple[int, int]:
        """[start, end) epoch ms of an asset's partition, by the definitions of the last run."""
        if self.definitions is None:
            project = SQLMeshProject(path=self.folder)
            self.definitions = build_definitions(project, partitions=self._partitions)
        partitions_def = self.definitions.get_assets_def(key).partitions_def
        window = partitions_def.time_window_for_partition_key(partition)  # type: ignore[union-attr]
        return int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)

    def run_config(self, step: Step) -> dict[str, Any]:
        config: dict[str, Any] = {"execution_time": step.execution_time}
        if step.restate:
            config["restate"] = True
        if step.environment != "prod":
            config["environment"] = step.environment
        # Dagster's console logger only for warnings: the report is the harness's output
        return {
            "resources": {"sqlmesh": {"config": config}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        }

    @staticmethod
    def partition_tags(step: Step) -> dict[str, str] | None:
        if step.window is None:
            return None
        first, last = step.window
        return {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }

    def _run_cli(self, step: Step) -> str:
        """`dagster asset materialize` in a subprocess started from the scenario's root folder
        (not the project), as a user or a deployment starts it."""
        select = ",".join(asset_key(n).to_user_string() for n in step.select) or "*"
        command = ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions"]
        command += ["--select", select, "--config-json", json.dumps(self.run_config(step))]
        if step.window:
            command += ["--partition-range", "...".join(step.window)]
        env = {
            "MXM_SQLMESH_PROJECT": str(self.folder),
            "DAGSTER_HOME": str(self.home),
            "MXM_SQLMESH_PARTITIONS": "on" if step.partitions else "off",
        }
        self.definitions = None  # built on demand for partition windows (the CLI built its own)
        self._partitions = step.partitions
        before = {r.dagster_run.run_id for r in self.instance.get_run_records()}
        done = run_cli(command, env, cwd=self.home.parent)
        new = [r for r in self.instance.get_run_records() if r.dagster_run.run_id not in before]
        if not new:
            raise NoRun(f"the CLI recorded no run: {_last_line(done.stderr)}")
        return new[0].dagster_run.run_id


class NoRun(Exception):
    """The code location started no run (it did not load, or its CLI refused)."""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def asset_key(model: str) -> dg.AssetKey:
    """`schema.table` -> the code location's key `schema/table` (default catalog)."""
    return dg.AssetKey(model.split("."))
