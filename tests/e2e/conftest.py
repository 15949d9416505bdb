"""One real `dagster dev` for the e2e tests, on its own copy of the reference SQLMesh project.

Starting and stopping `dagster dev` costs 30-50 s on a busy 2-core machine, so every e2e test shares
one instance (package scope: it stops when the last e2e test is done, before the other tests run).
The GraphQL tests go first: they start from a fresh warehouse and check what that means; the
browser test only needs a running instance. When a test fails, the tail of the dagster dev log is
attached to its report and the whole log is kept under artifacts/e2e/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.dagster_dev import (
    REFERENCE_PROJECT,
    DagsterDev,
    copy_project,
    save_log,
)

FIRST_MODULE = "test_dagster_dev.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within tests/e2e, run the module that needs a fresh warehouse before the others."""
    here = Path(__file__).parent
    positions = [i for i, item in enumerate(items) if item.path.parent == here]
    if not positions:
        return
    e2e = [items[i] for i in positions]
    ordered = sorted(e2e, key=lambda item: item.path.name != FIRST_MODULE)  # stable
    for index, item in zip(positions, ordered, strict=True):
        items[index] = item


@pytest.fixture(scope="package")
def e2e_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the reference project: no warehouse yet, no caches."""
    return copy_project(REFERENCE_PROJECT, tmp_path_factory.mktemp("e2e") / "sqlmesh_project")


@pytest.fixture(scope="package")
def dagster_dev(
    request: pytest.FixtureRequest, e2e_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagsterDev]:
    """`dagster dev -w workspace.yaml` serving `e2e_project`, loaded and ready for GraphQL."""
    name = "e2e"
    failed_before = request.session.testsfailed
    dev = DagsterDev(e2e_project, tmp_path_factory.mktemp("dagster_dev"))
    try:
        dev.start()
        dev.wait_until_loaded()
    except BaseException:
        dev.stop()
        save_log(dev, name)
        raise
    try:
        yield dev
    finally:
        dev.stop()
    if request.session.testsfailed > failed_before or dev.exited_early or dev.killed:
        print(f"\ndagster dev log kept at {save_log(dev, name)}")
    if dev.exited_early:
        pytest.fail(f"dagster dev exited while the tests ran:\n{dev.log_tail()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the dagster dev log tail to a failing e2e test's report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and report.when in ("setup", "call"):
        dev = getattr(item, "funcargs", {}).get("dagster_dev")
        if isinstance(dev, DagsterDev):
            report.sections.append(("dagster dev log (tail)", dev.log_tail(8_000)))
