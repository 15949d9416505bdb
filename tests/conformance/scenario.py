"""Runs a scenario: two copies of a project, every step on both, a comparison after each."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mxm_dagster.assets.loader import asset_keys_by_model
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conformance.claims import read_claims
from tests.conformance.compare import (
    Divergence,
    compare_claims,
    compare_intervals,
    compare_views,
    declared_away,
)
from tests.conformance.projects import PROJECTS
from tests.conformance.sides import DagsterTwin, NoRun, run_raw, sqlmesh_context
from tests.conformance.state import SQLMeshTruth, environment_snapshots, observe
from tests.conformance.steps import Declared, Step


@dataclass(frozen=True)
class Scenario:
    name: str
    project: str
    steps: tuple[Step, ...]
    #: differences declared for every step (e.g. one that persists once made)
    declared: tuple[Declared, ...] = ()


@dataclass
class Report:
    scenario: str
    steps_run: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    declared: list[Divergence] = field(default_factory=list)
    raw_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def text(self) -> str:
        lines = [
            f"{self.scenario}: {self.steps_run} steps, {len(self.divergences)} divergences, "
            f"{len(self.declared)} declared differences, {self.seconds:.1f} s"
        ]
        lines += [
            f"  raw SQLMesh failed in [{step}]: {error.splitlines()[0][:200]}"
            for step, error in self.raw_errors.items()
        ]
        declared = sorted({(d.kind, d.subject) for d in self.declared})
        lines += [f"  declared, and found: {kind} {subject}" for kind, subject in declared]
        lines += [str(d) for d in self.divergences]
        return "\n".join(lines)


def run_scenario(scenario: Scenario, root: Path, baseline: Path | None = None) -> Report:
    """Both twins from the same project files at the calendar's first time, then every step.

    With `baseline` (the root of a scenario that ran this one's first step alone, see
    `build_baseline`), the twins, their warehouses and the Dagster instance are copied from it
    instead of running that step again: random seeds all start with the same build.
    """
    started = time.monotonic()
    project = PROJECTS[scenario.project]
    raw_folder = root / "raw" / scenario.project
    ours_folder = root / "dagster" / scenario.project
    steps = scenario.steps
    if baseline is None:
        project.write(raw_folder, steps[0].at)
        ours_folder.parent.mkdir(parents=True)
        shutil.copytree(raw_folder, ours_folder, symlinks=True)
    else:
        for part in ("raw", "dagster", "dagster_home"):
            shutil.copytree(baseline / part, root / part, symlinks=True)
        steps = steps[1:]
    dagster = DagsterTwin(ours_folder, root / "dagster_home")
    report = Report(scenario.name)  # with a baseline, its first step counts there
    for step in steps:
        found = run_step(step, project, raw_folder, dagster, report)
        undeclared, declared = declared_away(found, step.declared + scenario.declared, step)
        report.divergences += undeclared
        report.declared += declared
        report.steps_run += 1
    report.seconds = time.monotonic() - started
    return report


def build_baseline(scenario: Scenario, root: Path) -> Report:
    """Run only the scenario's first step under `root`, for `run_scenario(..., baseline=root)`."""
    return run_scenario(
        Scenario(
            f"{scenario.name} (baseline)", scenario.project, scenario.steps[:1], scenario.declared
        ),
        root,
    )


def run_step(step: Step, project, raw_folder: Path, dagster: DagsterTwin, report: Report):
    for folder in (raw_folder, dagster.folder):
        project.land(folder, step.at)
        for change in step.changes:
            change(folder)
    since = int(time.time() * 1000)
    error = run_raw(raw_folder, step)
    if error:
        report.raw_errors[step.name] = error
    raw_state = observe(raw_folder, since)
    since = int(time.time() * 1000)
    try:
        run_id = dagster.run(step)
    except NoRun as exc:
        ours = observe(dagster.folder, since)
        started = Divergence(step.name, "run", "code location", "ran", str(exc))
        return [started, *compare_views(step, raw_state, ours)] + compare_intervals(
            step, raw_state, ours
        )
    ours = observe(dagster.folder, since)
    spec = SQLMeshProject(path=dagster.folder).load_spec()
    model_by_key = {key: name for name, key in asset_keys_by_model(spec).items()}
    claims = read_claims(dagster.instance, run_id, model_by_key, dagster.partition_window)
    audits = audits_by_model(dagster.folder, step.environment)
    truth = SQLMeshTruth(dagster.folder)
    try:
        claimed = compare_claims(step, truth, ours, claims, audits)
    finally:
        truth.close()
    return compare_views(step, raw_state, ours) + compare_intervals(step, raw_state, ours) + claimed


def audits_by_model(folder: Path, environment: str) -> dict[str, list[str]]:
    """Model -> names of the audits SQLMesh runs after evaluating it (skipped ones left out)."""
    with sqlmesh_context(folder, load=False) as context:
        return {
            name: [a.name for a, _ in snapshot.model.audits_with_args if not a.skip]
            for name, snapshot in environment_snapshots(context, environment).items()
            if snapshot.is_model and not snapshot.is_external
        }
