"""The package tree follows the process boundary (ADR 6, 8, 9), and this test keeps it so.

`child/` runs in the SQLMesh child: the only package that imports `sqlmesh`, and it imports no
Dagster. `records/` (what crosses processes), `common/` and `project/` import neither, so every
process can use them. The packages stand on floors (ADR 10), and an import only ever goes down a
floor: none goes up, none goes sideways between two packages of one floor, so no two packages
import each other. Every import counts, including those inside functions: a lazy import of
SQLMesh in a Dagster process still pays SQLMesh's import and memory once it runs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import mxm_dagster
from tests.conftest import REPO

PACKAGE = REPO / "mxm_dagster"
#: The floors, from the ground up: a module may import its own package and the floors below its
#: own, nothing else. "" is the package root (`mxm_dagster/__init__.py`, the public API).
FLOORS: tuple[tuple[str, ...], ...] = (
    ("common",),  # neither Dagster nor SQLMesh: errors, files, locks, names, times, interpreters
    ("records",),  # what crosses processes
    ("project",),  # what a project is: folders, caches, locks, spec cache; the child's order
    ("child", "asset_graph"),  # the SQLMesh child | the SQLMesh names in Dagster's asset graph
    ("run",),  # the run worker: the resource and the shared execution
    ("assets",),  # the definitions the code server builds: assets, sensors, jobs, component
    ("justetf",),  # the reference flow's own assets
    ("code_location", "defs"),  # the code location from MXM_ variables | the `dg` defs folder
    ("definitions", "dg_definitions"),  # what `dagster -m` and `dg` load
    ("",),
)
#: Packages whose modules run in Dagster processes only.
DAGSTER_SIDE = tuple(
    f"mxm_dagster.{name}"
    for floor in FLOORS[FLOORS.index(("child", "asset_graph")) :]
    for name in floor
    if name and name != "child"
)


def _module_name(file: Path, root: Path = REPO) -> str:
    parts = file.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(file: Path, root: Path = REPO) -> set[str]:
    """Every module `file` imports, anywhere in it; `from a import b` counts as `a` and `a.b`, and
    a public name of `mxm_dagster` as the module it comes from."""
    module = _module_name(file, root)
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


def imports_of_tree(root: Path = REPO) -> dict[str, set[str]]:
    """Module -> the `mxm_dagster` modules it imports, for the package under `root`."""
    return {
        _module_name(file, root): {n for n in _imported(file, root) if _within(n, "mxm_dagster")}
        for file in sorted((root / "mxm_dagster").rglob("*.py"))
    }


def _package_of(module: str) -> str:
    """`mxm_dagster.run.resource` -> `run`; the root itself -> ""."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _floor_of(package: str) -> int | None:
    return next((i for i, floor in enumerate(FLOORS) if package in floor), None)


def floor_violations(imports: Mapping[str, set[str]]) -> list[str]:
    """Every import of `imports` (module -> modules it imports) that does not go down a floor or
    stay in its package: up a floor, sideways to another package of the same floor, or from or to
    a package on no floor (a new package must be given its floor)."""
    found = []
    for module, names in sorted(imports.items()):
        own = _package_of(module)
        for name in sorted(names):
            target = _package_of(name)
            if target == own:
                continue
            floor, to = _floor_of(own), _floor_of(target)
            if floor is None or to is None:
                found.append(f"{module} imports {name}: {own or target!r} is on no floor")
            elif to >= floor:
                way = "sideways" if to == floor else "up"
                found.append(f"{module} imports {name}: {way}, from {own!r} to {target!r}")
    return found


def module_circles(imports: Mapping[str, set[str]]) -> list[list[str]]:
    """The circles of imports between modules (a package counts as its `__init__`). A module's
    own parent packages are left out: Python imports them before the module anyway."""
    graph = {
        m: {n for n in names if n in imports and not _within(m, n)} for m, names in imports.items()
    }
    circles, done, path = [], set(), []

    def visit(module: str) -> None:
        if module in path:
            circles.append(path[path.index(module) :] + [module])
            return
        if module in done:
            return
        path.append(module)
        for name in sorted(graph[module]):
            visit(name)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    return circles


def _within(name: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(name == p or name.startswith(f"{p}.") for p in packages)


def _modules(under: str) -> list[Path]:
    files = sorted((PACKAGE / under).rglob("*.py")) if under else sorted(PACKAGE.rglob("*.py"))
    assert files, f"no modules under mxm_dagster/{under}"
    return files


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{file.relative_to(REPO)} imports {name}"
        for file in files
        for name in sorted(_imported(file))
        if _within(name, forbidden)
    ]


def test_every_import_goes_down_a_floor() -> None:
    assert floor_violations(imports_of_tree()) == []


def test_no_two_modules_import_each_other_even_through_others() -> None:
    assert module_circles(imports_of_tree()) == []


def test_every_package_stands_on_a_floor() -> None:
    packages = {_package_of(module) for module in imports_of_tree()}
    assert {p for p in packages if _floor_of(p) is None} == set()


@pytest.mark.parametrize(
    ("module", "imported", "way"),
    [
        # the circle this test was extended for: the project floor loading through the child
        ("mxm_dagster.project.sqlmesh_project", "mxm_dagster.child.project", "up"),
        ("mxm_dagster.records.specs", "mxm_dagster.project.sqlmesh_project", "up"),
        ("mxm_dagster.run.finalize", "mxm_dagster.assets.loader", "up"),
        ("mxm_dagster.child.project", "mxm_dagster.asset_graph.metadata", "sideways"),
        ("mxm_dagster.common.files", "mxm_dagster", "up"),
        ("mxm_dagster.gadgets.tool", "mxm_dagster.common.files", "on no floor"),
    ],
)
def test_the_floor_check_catches_an_import_up_sideways_or_off_the_floors(
    module: str, imported: str, way: str
) -> None:
    imports = {module: {imported}, imported: set()}
    (found,) = floor_violations(imports)
    assert way in found and imported in found


def test_the_circle_check_catches_a_circle_through_a_third_module() -> None:
    a, b, c = "mxm_dagster.run.a", "mxm_dagster.run.b", "mxm_dagster.run.c"
    assert module_circles({a: {b}, b: {c}, c: {a}}) == [[a, b, c, a]]


def test_no_module_outside_the_child_package_imports_it() -> None:
    """The SQLMesh child is started by module name (`python -m`), never imported: the project
    floor hands its loader in (`sqlmesh_project.load_here_with`) instead."""
    outside_child = [f for f in _modules("") if not _within(_module_name(f), "mxm_dagster.child")]
    assert _violations(outside_child, ("mxm_dagster.child",)) == []


def test_only_the_child_package_imports_sqlmesh() -> None:
    outside_child = [f for f in _modules("") if not _within(_module_name(f), "mxm_dagster.child")]
    assert _violations(outside_child, ("sqlmesh",)) == []


def test_the_child_package_imports_no_dagster_and_no_dagster_side_module() -> None:
    assert _violations(_modules("child"), ("dagster", *DAGSTER_SIDE)) == []


@pytest.mark.parametrize("package", ["records", "common", "project"])
def test_the_shared_floors_import_neither_dagster_nor_sqlmesh_nor_the_child(package: str) -> None:
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
