"""SQLMesh runs where the `sqlmesh` CLI would: in the project folder, whatever folder Dagster was
started from, and the project loads whatever else its folder holds.

Real projects read files by relative path (`read_csv('./data/x.csv')`, a Python model's `open`,
a `before_all` statement), and real folders hold dangling symlinks, editor lock files, FIFOs and
virtual environments. Each case is built by raw SQLMesh in its folder on a twin copy and by
`dagster asset materialize` launched from another folder; both must leave the same views.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import DUCKDB_CONFIG, dagster_home, environment, run_cli, runs

pytestmark = pytest.mark.timeout(600)

MATERIALIZE_ALL = ["dagster", "asset", "materialize", "-m", "mxm_dagster.definitions"]
#: Every `before_all` statement SQLMesh runs reads its data by a path relative to the project.
BEFORE_ALL = """\
before_all:
  - CREATE SCHEMA IF NOT EXISTS landing
  - CREATE OR REPLACE TABLE landing.rates AS SELECT * FROM read_csv('data/rates.csv')
"""
MODELS = {
    "customers.sql": """\
MODEL (name shop.customers, kind FULL);
SELECT id::INT AS id, name::TEXT AS name FROM read_csv('./data/customers.csv')
""",
    "rates.sql": """\
MODEL (name shop.rates, kind FULL);
SELECT currency::TEXT AS currency, rate::DOUBLE AS rate FROM landing.rates
""",
    "orders.py": '''\
"""Orders from a JSON file the model opens by a path relative to the project folder."""

import json
import typing as t
from datetime import datetime

import pandas as pd
from sqlmesh import ExecutionContext, model


@model(
    "shop.orders",
    kind="FULL",
    columns={"order_id": "int", "customer_id": "int", "amount": "double", "currency": "text"},
)
def execute(
    context: ExecutionContext,
    start: datetime,
    end: datetime,
    execution_time: datetime,
    **kwargs: t.Any,
) -> pd.DataFrame:
    with open("data/orders.json") as source:
        return pd.DataFrame(json.load(source))
''',
    "customer_totals.sql": """\
MODEL (name shop.customer_totals, kind FULL);
SELECT c.name, ROUND(SUM(o.amount * r.rate), 2) AS total_eur
FROM shop.orders AS o
JOIN shop.customers AS c ON c.id = o.customer_id
JOIN shop.rates AS r ON r.currency = o.currency
GROUP BY c.name
""",
}
ORDERS = [
    {"order_id": 1, "customer_id": 1, "amount": 10.0, "currency": "EUR"},
    {"order_id": 2, "customer_id": 2, "amount": 20.0, "currency": "USD"},
    {"order_id": 3, "customer_id": 1, "amount": 5.0, "currency": "USD"},
]
EXPECTED = {
    "shop.customers": [(1, "Ada"), (2, "Grace")],
    "shop.rates": [("EUR", 1.0), ("USD", 0.5)],
    "shop.orders": [(1, 1, 10.0, "EUR"), (2, 2, 20.0, "USD"), (3, 1, 5.0, "USD")],
    "shop.customer_totals": [("Ada", 12.5), ("Grace", 10.0)],
}
ASSETS = {"shop/customers", "shop/rates", "shop/orders", "shop/customer_totals"}


def _write_project(folder: Path, config_extra: str = "") -> Path:
    """A DuckDB project whose SQL model, Python model and before_all read `data/` relatively."""
    (folder / "models").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "config.yaml").write_text(DUCKDB_CONFIG + BEFORE_ALL + config_extra)
    for name, text in MODELS.items():
        (folder / "models" / name).write_text(text)
    (folder / "data" / "customers.csv").write_text("id,name\n1,Ada\n2,Grace\n")
    (folder / "data" / "rates.csv").write_text("currency,rate\nEUR,1.0\nUSD,0.5\n")
    (folder / "data" / "orders.json").write_text(json.dumps(ORDERS))
    return folder


def _add_odd_files(folder: Path) -> None:
    """What real project folders hold besides what SQLMesh reads."""
    # SQLMesh's dbt example ships this one: relative, pointing nowhere.
    (folder / "packages" / "customers").mkdir(parents=True)
    (folder / "packages" / "customers" / "customers").symlink_to("../packages/customers")
    # Emacs's lock files are dangling symlinks named `.#<file>`. SQLMesh would read the one in
    # models/ (its glob matches it) unless ignore_patterns says not to, which the config does.
    (folder / "models" / ".#customers.sql").symlink_to("user@host.1234:1700000000")
    (folder / "data" / ".#rates.csv").symlink_to("user@host.1234:1700000000")
    # Unreadable: a FIFO blocks whoever reads it (chmod 000 would not stop root, who runs the
    # tests). SQLMesh skips an empty-looking model file, and never opens data/.
    os.mkfifo(folder / "data" / "stream.csv")
    os.mkfifo(folder / "models" / "queue.sql")
    (folder / "data" / "odd.csv").mkdir()  # a folder named like a file
    # A virtual environment inside the project, with its own dangling link and a Python file.
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to("/nonexistent/python3.11")
    site = folder / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "helper.py").write_text("VALUE = 1\n")


def _twin(folder: Path, twin: Path) -> Path:
    """A copy of the project, odd files included (symlinks as symlinks, FIFOs as FIFOs)."""
    shutil.copytree(folder, twin, symlinks=True, copy_function=_copy_entry)
    return twin


def _copy_entry(source: str, dest: str) -> None:
    if Path(source).is_fifo():
        os.mkfifo(dest)
    else:
        shutil.copy2(source, dest)


def _view_rows(project: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as connection:
        return {
            view: sorted(connection.execute(f"SELECT * FROM {view}").fetchall())
            for view in EXPECTED
        }


def _raw_sqlmesh(twin: Path) -> None:
    """What a data engineer runs: `sqlmesh plan` in the project folder."""
    done = run_cli(["sqlmesh", "plan", "--auto-apply", "--no-prompts"], {}, cwd=twin)
    assert done.returncode == 0, done.stdout + done.stderr


def _materialize_from_elsewhere(project: Path, tmp_path: Path) -> list:
    """`dagster asset materialize` as `dagster dev` would start it: from another folder, with
    MXM_SQLMESH_PROJECT relative to that folder. Returns the instance's runs."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = dagster_home(tmp_path)
    env = environment(Path(os.path.relpath(project, elsewhere)), home)
    done = run_cli([*MATERIALIZE_ALL, "--select", "*"], env, cwd=elsewhere, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert not list(elsewhere.iterdir()), "nothing may be written where Dagster was started"
    return runs(home)


def _assert_materialized(recorded: list) -> None:
    (run,) = recorded
    assert run.success
    materialized = run.materializations()
    assert set(materialized) == ASSETS
    for key in ASSETS:
        assert materialized[key]["sqlmesh/outcome"] == "evaluated", (key, materialized[key])


def test_relative_paths_resolve_in_the_project_folder_as_with_the_sqlmesh_cli(
    tmp_path: Path,
) -> None:
    project = _write_project(tmp_path / "project")
    twin = _twin(project, tmp_path / "twin")

    _raw_sqlmesh(twin)
    recorded = _materialize_from_elsewhere(project, tmp_path)

    _assert_materialized(recorded)
    assert _view_rows(project) == EXPECTED
    assert _view_rows(project) == _view_rows(twin)


def test_a_folder_with_dangling_links_fifos_and_a_venv_loads_and_builds(tmp_path: Path) -> None:
    project = _write_project(tmp_path / "project", 'ignore_patterns:\n  - ".#*"\n')
    _add_odd_files(project)
    twin = _twin(project, tmp_path / "twin")

    _raw_sqlmesh(twin)
    recorded = _materialize_from_elsewhere(project, tmp_path)

    _assert_materialized(recorded)
    assert _view_rows(project) == EXPECTED
    assert _view_rows(project) == _view_rows(twin)


def test_a_multi_repo_project_runs_in_its_first_folder(tmp_path: Path) -> None:
    """`sqlmesh -p first -p second plan` run in the first folder: SQLMesh takes the connection
    from the first folder's config, and relative paths resolve there too."""
    root = tmp_path / "multi"
    first = _write_project(root / "first", "project: first\n")
    second = root / "second"
    (second / "models").mkdir(parents=True)
    (second / "config.yaml").write_text(DUCKDB_CONFIG + "project: second\n")
    (second / "models" / "big_spenders.sql").write_text(
        "MODEL (name report.big_spenders, kind FULL);\n"
        "SELECT name FROM shop.customer_totals WHERE total_eur > 11\n"
    )
    twin_root = tmp_path / "twin"
    shutil.copytree(root, twin_root)
    twin_first, twin_second = twin_root / "first", twin_root / "second"

    done = run_cli(
        ["sqlmesh", "-p", ".", "-p", str(twin_second), "plan", "--auto-apply", "--no-prompts"],
        {},
        cwd=twin_first,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = dagster_home(tmp_path)
    env = environment(Path(f"{first}{os.pathsep}{second}"), home)
    done = run_cli([*MATERIALIZE_ALL, "--select", "*"], env, cwd=elsewhere, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    (run,) = runs(home)
    assert set(run.materializations()) == {*ASSETS, "report/big_spenders"}
    assert not (second / "warehouse.duckdb").exists()  # the second folder's config is not used
    assert _view_rows(first) == EXPECTED == _view_rows(twin_first)
    query = "SELECT * FROM report.big_spenders"
    with duckdb.connect(str(first / "warehouse.duckdb"), read_only=True) as connection:
        ours = connection.execute(query).fetchall()
    with duckdb.connect(str(twin_first / "warehouse.duckdb"), read_only=True) as connection:
        assert ours == connection.execute(query).fetchall() == [("Ada",)]
