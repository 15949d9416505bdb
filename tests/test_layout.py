"""The package tree follows the process boundary (ADR 6, 8, 9), and this test keeps it so.

`child/` runs in the SQLMesh child: the only package that imports `sqlmesh`, and it imports no
Dagster. `records/` (what crosses processes) and `common/` import neither, so every process can
use them. Every import counts, including those inside functions: a lazy import of SQLMesh in a
Dagster process still pays SQLMesh's import and memory once it runs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mxm_dagster
from tests.conftest import REPO

PACKAGE = REPO / "mxm_dagster"
#: Packages whose modules run in Dagster processes only.
DAGSTER_SIDE = (
    "mxm_dagster.assets",
    "mxm_dagster.run",
    "mxm_dagster.justetf",
    "mxm_dagster.definitions",
    "mxm_dagster.code_location",
    "mxm_dagster.defs",
    "mxm_dagster.dg_definitions",
)
#: The one import of `child/` from `common/`: `SQLMeshProject.load_spec` loads in-process only
#: where SQLMesh is already imported (the SQLMesh child, a test), else in a child interpreter.
IN_PROCESS_LOAD = ("mxm_dagster/common/project.py", "mxm_dagster.child.project")


def _module_name(file: Path) -> str:
    parts = file.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(file: Path) -> set[str]:
    """Every module `file` imports, anywhere in it; `from a import b` counts as `a` and `a.b`, and
    a public name of `mxm_dagster` as the module it comes from."""
    module = _module_name(file)
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, node.module or ""]).strip(".") if node.level else node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    public = {f"mxm_dagster.{name}": origin for name, origin in mxm_dagster._MODULE_OF.items()}
    return names | {public[name] for name in names if name in public}


def _within(name: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(name == p or name.startswith(f"{p}.") for p in packages)


def _modules(under: str) -> list[Path]:
    files = sorted((PACKAGE / under).rglob("*.py")) if under else sorted(PACKAGE.rglob("*.py"))
    assert files, f"no modules under mxm_dagster/{under}"
    return files


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for file in files:
        relative = str(file.relative_to(REPO))
        for name in sorted(_imported(file)):
            allowed = relative == IN_PROCESS_LOAD[0] and _within(name, IN_PROCESS_LOAD[1])
            if _within(name, forbidden) and not allowed:
                found.append(f"{relative} imports {name}")
    return found


def test_only_the_child_package_imports_sqlmesh() -> None:
    outside_child = [f for f in _modules("") if not _within(_module_name(f), "mxm_dagster.child")]
    assert _violations(outside_child, ("sqlmesh",)) == []


def test_the_child_package_imports_no_dagster_and_no_dagster_side_module() -> None:
    assert _violations(_modules("child"), ("dagster", *DAGSTER_SIDE)) == []


@pytest.mark.parametrize("package", ["records", "common"])
def test_records_and_common_import_neither_dagster_nor_sqlmesh_nor_the_child(package: str) -> None:
    forbidden = ("dagster", "sqlmesh", "duckdb", "mxm_dagster.child", *DAGSTER_SIDE)
    assert _violations(_modules(package), forbidden) == []


def test_the_package_root_imports_nothing_at_import_time() -> None:
    """Only `if TYPE_CHECKING:` may name submodules; the public names load on first access."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    runtime = [
        alias.name if isinstance(node, ast.Import) else node.module
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert set(runtime) <= {"__future__", "importlib", "typing"}


# A fresh interpreter: what importing a module really pulls in.
_IMPORTED_BY = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"dagster", "sqlmesh"})))
"""


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("mxm_dagster", []),
        ("mxm_dagster.child.execute", ["sqlmesh"]),
        ("mxm_dagster.child.load_spec", ["sqlmesh"]),
        ("mxm_dagster.child.plan.decision", []),  # deciding asks SQLMesh nothing itself
        ("mxm_dagster.child.plan.planner", []),  # nor does planning: its reads are passed in
        ("mxm_dagster.run.resource", ["dagster"]),
    ],
)
def test_importing_a_module_imports_only_its_own_side(module: str, expected: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED_BY, module],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_every_public_name_resolves_on_access() -> None:
    for name in mxm_dagster.__all__:
        assert getattr(mxm_dagster, name).__name__ == name


def test_the_resource_has_one_name_and_its_old_one_only_warns() -> None:
    """`SQLMeshResultsResource` is the public name; `SQLMeshResource` (its name after issue 12)
    still imports, warning, and is the same class, so Dagster shows only the design's name."""
    from mxm_dagster.run import resource

    assert "SQLMeshResultsResource" in mxm_dagster.__all__
    assert "SQLMeshResource" not in mxm_dagster.__all__
    assert "SQLMeshResource" not in dir(mxm_dagster)
    for _ in range(2):  # every access warns, not only the first
        with pytest.warns(DeprecationWarning, match="use SQLMeshResultsResource") as caught:
            old = mxm_dagster.SQLMeshResource
        assert old is resource.SQLMeshResultsResource
        assert caught[0].filename == __file__  # the warning names the code to change
    with pytest.warns(DeprecationWarning, match="use SQLMeshResultsResource") as caught:
        from mxm_dagster.run.resource import SQLMeshResource
    assert SQLMeshResource is resource.SQLMeshResultsResource
    assert caught[0].filename == __file__
    with pytest.raises(AttributeError):
        _ = resource.NoSuchName  # type: ignore[attr-defined]
