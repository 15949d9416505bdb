"""A project folder nobody may write (as baked into an image) loads and runs.

The reference project is copied and mounted read-only over itself in a private mount namespace
(`unshare -m` + `mount --bind -o ro`): as root, `chmod -R a-w` stops no write, a read-only mount
does, for every process the CLI starts (run worker, SQLMesh children). MXM_SQLMESH_CACHE_DIR then
takes SQLMesh's cache, the spec cache and the locks, or without it DAGSTER_HOME's
`mxm_dagster/cache`; SQLMesh's own `SQLMESH__GATEWAYS__...` variable moves the embedded DuckDB
warehouse out of the project.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mxm_dagster.project.protocol import ChildOrder
from mxm_dagster.project.sqlmesh_project import CACHE_DIR_ENV, SQLMeshProject
from mxm_dagster.records.request import PROD, ExecutionRequest
from mxm_dagster.records.specs import LoadedModels
from tests.conftest import (
    DUCKDB_CONFIG,
    REFERENCE_PROJECT,
    REPO,
    VENV_BIN,
    copy_project,
    dagster_home,
    query,
    runs,
    views,
)
from tests.support.required import setup_missing

pytestmark = pytest.mark.timeout(300)

#: Mount the folder in $0 read-only over itself, then run the command; the mount is private to
#: this process and its children, so the copy stays writable for the test itself.
READ_ONLY_SHELL = 'mount --bind -o ro "$0" "$0" && exec "$@"'
WAREHOUSE_ENV = "SQLMESH__GATEWAYS__LOCAL__CONNECTION__DATABASE"
DEFINITIONS = ["-m", "mxm_dagster.definitions"]


def in_read_only(folder: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `args` (a venv command) with `folder` read-only, in an environment of only `env`
    beyond the machine's (no MXM_ or SQLMESH__ variable of the caller's, and no DAGSTER_HOME:
    `make test` exports one, and where the caches go depends on it)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MXM_", "SQLMESH__")) and k != "DAGSTER_HOME"
    }
    command = [str(VENV_BIN / args[0]), *args[1:]]
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", READ_ONLY_SHELL, str(folder), *command],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )


def write_probe(folder: Path) -> list[str]:
    """A command that tries to create a file in `folder` and prints the errno it got."""
    code = (
        "import sys\n"
        "try:\n"
        f"    open({str(folder / 'probe')!r}, 'w').close()\n"
        "except OSError as exc:\n"
        "    print(exc.errno); sys.exit(3)\n"
    )
    return [Path(sys.executable).name, "-c", code]


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder`: relative path -> (size, mtime ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def read_only_mounts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip (fail in CI), with the exact error, where this machine cannot make a read-only mount."""
    folder = tmp_path_factory.mktemp("mount_probe")
    if shutil.which("unshare") is None:
        setup_missing("no unshare(1) on this machine", "MXM_REQUIRE_READ_ONLY_MOUNT")
    done = in_read_only(folder, write_probe(folder), {})
    if done.returncode != 3:
        setup_missing(
            f"no read-only bind mount here: {done.stderr.strip() or done.stdout}",
            "MXM_REQUIRE_READ_ONLY_MOUNT",
        )


@dataclass
class ReadOnlyRun:
    project: Path
    cache: Path
    warehouse: Path
    home: Path
    before: dict[str, tuple[int, int]]
    probe: subprocess.CompletedProcess
    listed: subprocess.CompletedProcess
    materialized: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def read_only_run(read_only_mounts: None, tmp_path_factory: pytest.TempPathFactory) -> ReadOnlyRun:
    """`dagster asset list` and `dagster asset materialize --select '*'` of a read-only copy of
    the reference project, caches and warehouse in folders of their own."""
    tmp = tmp_path_factory.mktemp("read_only")
    project = copy_project(REFERENCE_PROJECT, tmp / "project")
    cache, warehouse = tmp / "cache", tmp / "warehouse" / "justetf.duckdb"
    warehouse.parent.mkdir()
    home = dagster_home(tmp)
    env = {
        "MXM_SQLMESH_PROJECT": str(project),
        "DAGSTER_HOME": str(home),
        CACHE_DIR_ENV: str(cache),
        WAREHOUSE_ENV: str(warehouse),
    }
    before = tree(project)
    probe = in_read_only(project, write_probe(project), env)
    listed = in_read_only(project, ["dagster", "asset", "list", *DEFINITIONS], env)
    materialized = in_read_only(
        project, ["dagster", "asset", "materialize", *DEFINITIONS, "--select", "*"], env
    )
    return ReadOnlyRun(project, cache, warehouse, home, before, probe, listed, materialized)


def test_the_project_is_truly_read_only_for_the_run(read_only_run: ReadOnlyRun) -> None:
    assert read_only_run.probe.returncode == 3, read_only_run.probe.stderr
    assert read_only_run.probe.stdout.strip() == "30"  # EROFS


def test_a_read_only_project_loads(read_only_run: ReadOnlyRun) -> None:
    listed = read_only_run.listed
    assert listed.returncode == 0, listed.stderr[-3000:]
    keys = set(listed.stdout.split())
    assert {"landing/etf_daily_quotes", "marts/ter_comparison", "raw/etf_master"} <= keys


def test_a_read_only_project_runs_every_model(read_only_run: ReadOnlyRun) -> None:
    done = read_only_run.materialized
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = runs(read_only_run.home)
    assert run.success
    # Every model SQLMesh found in the project is served, from the warehouse outside it.
    [spec_file] = (read_only_run.cache).glob("*/mxm_dagster/spec-*.json")
    spec = LoadedModels.from_json(spec_file.read_text())
    models = {(m.schema, m.table) for m in spec.models if m.is_model}
    assert len(models) == 13
    served = {v for v in views(read_only_run.warehouse) if not v[0].startswith("sqlmesh__")}
    assert served == models
    landed = query(read_only_run.warehouse, "SELECT COUNT(*) FROM landing.etf_daily_quotes")
    assert landed[0][0] > 0
    assert query(read_only_run.warehouse, "SELECT COUNT(*) FROM marts.ter_comparison")[0][0] > 0
    # Nothing tried to write into the project and swallowed the error.
    assert "Read-only file system" not in done.stdout + done.stderr


def test_caches_and_locks_go_to_the_cache_folder(read_only_run: ReadOnlyRun) -> None:
    assert tree(read_only_run.project) == read_only_run.before  # no file created or changed
    [root] = read_only_run.cache.iterdir()
    own = {p.name.split("-")[0] + p.suffix for p in (root / "mxm_dagster").iterdir()}
    assert own == {"spec.json", "warehouse.lock", "warehouse.json"}
    # The landing asset and the SQLMesh child took the one lock of this warehouse.
    assert len(list((root / "mxm_dagster").glob("*.lock"))) == 1
    assert (root / "model_definition").is_dir()  # SQLMesh's own model cache


def test_without_a_cache_folder_nor_dagster_home_the_load_says_what_to_set(
    read_only_mounts: None, tmp_path: Path
) -> None:
    project = copy_project(REFERENCE_PROJECT, tmp_path / "project")
    done = in_read_only(
        project, ["dagster", "asset", "list", *DEFINITIONS], {"MXM_SQLMESH_PROJECT": str(project)}
    )
    assert done.returncode != 0
    assert f"{project} is read-only" in done.stderr
    assert f"set DAGSTER_HOME (they then go to its mxm_dagster/cache) or {CACHE_DIR_ENV}" in (
        done.stderr
    )
    assert not (project / ".cache").exists()


def test_without_a_cache_folder_the_caches_go_under_dagster_home(
    read_only_mounts: None, tmp_path: Path
) -> None:
    """No MXM_SQLMESH_CACHE_DIR: one run of a one-model project written here, read-only, keeps
    SQLMesh's cache, the spec cache and the lock in DAGSTER_HOME, in the project's subfolder."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "config.yaml").write_text(DUCKDB_CONFIG)
    (project / "models" / "one.sql").write_text("MODEL (name raw.one, kind FULL);\nSELECT 1 AS n")
    warehouse = tmp_path / "warehouse.duckdb"
    home = dagster_home(tmp_path)
    env = {"MXM_SQLMESH_PROJECT": str(project), "DAGSTER_HOME": str(home)}
    before = tree(project)
    done = in_read_only(
        project,
        ["dagster", "asset", "materialize", *DEFINITIONS, "--select", "*"],
        {**env, WAREHOUSE_ENV: str(warehouse)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = runs(home)
    assert run.success
    assert set(run.materializations()) == {"raw/one"}
    assert query(warehouse, "SELECT n FROM raw.one") == [(1,)]
    assert tree(project) == before  # nothing written into the project

    # the project's subfolder: its name and a digest of its absolute location
    digest = hashlib.sha1(str(project.resolve()).encode()).hexdigest()[:12]
    root = home / "mxm_dagster" / "cache" / f"project-{digest}"
    assert [p.name for p in (home / "mxm_dagster" / "cache").iterdir()] == [root.name]
    assert len(list((root / "mxm_dagster").glob("spec-*.json"))) == 1
    assert len(list((root / "mxm_dagster").glob("warehouse-*.lock"))) == 1
    assert (root / "model_definition").is_dir()  # SQLMesh's own model cache
    said = [line for line in done.stderr.splitlines() if f"{project} is read-only" in line]
    assert len(said) == 1 and str(root) in said[0]  # once, though several processes used it


def test_every_process_finds_the_same_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code server (from the variables), a run's steps (resource, `at`) and the SQLMesh
    child (its order) agree on the folder, hence on the lock of a project."""
    project = copy_project(REFERENCE_PROJECT, tmp_path / "project")
    cache = tmp_path / "cache"
    monkeypatch.setenv("MXM_SQLMESH_PROJECT", str(project))
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    served = SQLMeshProject.from_env()
    order = ChildOrder(served, ExecutionRequest(PROD, {"a"}), 1.0, 1.0, 60.0)
    seen = [
        served,
        SQLMeshProject(path=project),  # built in code, the variable still applies
        SQLMeshProject.at(str(project), cache_dir=cache),
        ChildOrder.from_json(order.to_json()).project,
    ]
    assert {p.cache_root for p in seen} == {served.cache_root}
    assert served.cache_root.parent == cache
    assert {p.spec_file() for p in seen} == {served.spec_file()}
    other = copy_project(REFERENCE_PROJECT, tmp_path / "other")
    assert SQLMeshProject(path=other).cache_root != served.cache_root  # one subfolder each
    monkeypatch.delenv(CACHE_DIR_ENV)
    assert SQLMeshProject(path=project).cache_root == project / ".cache"  # the default
