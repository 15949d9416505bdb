"""The direct walk of a model's scopes (child/sqlmesh_api/lineage.py) gives the column lineage
sqlglot's lineage gives, on every SQL model of real projects SQLMesh loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mxm_dagster.child.project import opened_context
from mxm_dagster.child.sqlmesh_api import lineage
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from tests.conftest import REPO

PROJECTS = {
    "reference": REPO / "sqlmesh_project",
    "kinds": REPO / "tests" / "fixtures" / "kinds_project",
}


def _by_sqlglot(model, default_catalog):  # type: ignore[no-untyped-def]
    specs = [
        lineage._column(name, node, model.dialect, default_catalog)
        for name, node in lineage._lineage_nodes(model)
    ]
    return tuple(spec for spec in specs if spec.deps)


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_the_walk_agrees_with_sqlglot_on_every_model_it_walks(name: str, tmp_path: Path) -> None:
    folder = tmp_path / name
    shutil.copytree(PROJECTS[name], folder, ignore=shutil.ignore_patterns(".cache", "*.duckdb"))
    walked = 0
    with opened_context(SQLMeshProject.at(str(folder))) as context:
        catalog = context.default_catalog
        for model in context.models.values():
            if not model.is_sql:
                continue
            found = lineage._walked(model, catalog)
            if found is None:  # a shape left to sqlglot
                continue
            walked += 1
            assert tuple(s for s in found if s.deps) == _by_sqlglot(model, catalog), model.name
            assert lineage.column_lineage(model, catalog) == _by_sqlglot(model, catalog)
    assert walked >= 10  # the common shapes take the walk, not the fallback
