"""The code location against raw SQLMesh, step by step (docs/adr/0014-conformance-harness.md).

Each fixed scenario runs on two copies of its twin project; after every step the environments'
rows and SQLMesh's intervals must be equal and every Dagster claim true of SQLMesh's state, except
the differences the scenario declares. A scenario that still diverges because of a known bug is
an xfail (strict) naming the divergence as measured: when the bug is fixed it fails as XPASS and
the mark comes off. CI (`make test`) runs every fixed scenario and two random seeds;
`make conformance SEEDS=N` runs the fixed scenarios and N seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import fixed
from tests.conformance.random_runs import scenario_for
from tests.conformance.scenario import Scenario, build_baseline, run_scenario

#: Seeds CI runs on every build (each about half a minute).
CI_SEEDS = (0, 1)


def _param(scenario: Scenario, xfail: str | None = None):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(scenario, id=scenario.name, marks=marks)


@pytest.mark.parametrize(
    "scenario",
    [
        _param(fixed.RETAIL_CALENDAR),
        _param(fixed.RETAIL_EDITS),
        _param(fixed.RETAIL_PARTITIONS),
        _param(fixed.RETAIL_DEV_WHILE_DUE),
        _param(fixed.LEDGER_LIFE),
        _param(fixed.FILES_CLI),
    ],
)
def test_fixed_scenario(scenario: Scenario, tmp_path: Path) -> None:
    report = run_scenario(scenario, tmp_path)
    assert report.steps_run == len(scenario.steps)
    assert not report.divergences, report.text()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first build every seed starts from, built once (and compared once)."""
    root = tmp_path_factory.mktemp("baseline")
    report = build_baseline(scenario_for(CI_SEEDS[0]), root)
    assert not report.divergences, report.text()
    return root


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_random_seed(seed: int, baseline: Path, tmp_path: Path) -> None:
    report = run_scenario(scenario_for(seed), tmp_path, baseline=baseline)
    assert not report.divergences, report.text()
