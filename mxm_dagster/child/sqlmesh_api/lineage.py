"""A model's column-level lineage and where it is defined, as SQLMesh knows them.

Both are computed once, when the project is introspected: the code location shows them on every
asset without SQLMesh (ADR 8).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlglot import exp
from sqlglot.lineage import Node
from sqlglot.lineage import lineage as sqlglot_lineage
from sqlglot.optimizer.scope import Scope, build_scope
from sqlmesh.core import lineage as sqlmesh_lineage
from sqlmesh.core.dialect import normalize_model_name

from mxm_dagster.records.specs import ColumnDep, ColumnLineageSpec

_MODEL_STATEMENT = re.compile(r"^\s*MODEL\s*\(", re.IGNORECASE | re.MULTILINE)


def column_lineage(model: Any, default_catalog: str | None) -> tuple[ColumnLineageSpec, ...]:
    """Each output column of a SQL model -> the upstream columns it reads, through CTEs and
    subqueries, on the query SQLMesh already rendered and qualified while loading.

    Most queries take a direct walk of their scopes (`_walked`); any other shape (a set
    operation, a scalar subquery, a table function, an unexpanded star) goes through sqlglot's
    lineage, which SQLMesh's own (`sqlmesh.core.lineage`) is built on. SQLMesh's per-column
    `lineage()` qualifies the query again for every model, which doubled a cold load of 500
    models; sqlglot's renders SQL for every node, most of the introspection at 5,000 models
    (ADR 23). Python and seed models have no query, hence no lineage; a query that cannot be
    resolved gives none either: lineage is shown, never needed, so it must not stop a project
    from loading.
    """
    if not model.is_sql:  # seeds, Python and external models
        return ()
    try:
        walked = _walked(model, default_catalog)
        if walked is None:
            nodes = _lineage_nodes(model)
            walked = [_column(name, node, model.dialect, default_catalog) for name, node in nodes]
    except Exception:
        return ()
    return tuple(spec for spec in walked if spec.deps)


class _Unwalkable(Exception):
    """A query shape the direct walk leaves to sqlglot's lineage."""


def _walked(model: Any, default_catalog: str | None) -> list[ColumnLineageSpec] | None:
    """Every output column's upstream columns by a walk of the qualified query's scopes: a
    column of a table alias is a dependency, a column of a CTE or subquery alias is followed to
    that scope's select of the same name. None for a shape it does not handle."""
    if model.optimize_query is False:
        return None
    query = model.render_query()
    scope = build_scope(query) if query is not None else None
    if scope is None or not isinstance(scope.expression, exp.Select):
        return None
    try:
        return [
            ColumnLineageSpec(
                select.alias_or_name,
                tuple(
                    sorted(
                        _select_deps(select, scope, model.dialect, default_catalog),
                        key=lambda d: (d.model, d.column),
                    )
                ),
            )
            for select in scope.expression.selects
        ]
    except _Unwalkable:
        return None


def _select_deps(
    select: exp.Expression, scope: Scope, dialect: str, default_catalog: str | None
) -> set[ColumnDep]:
    if isinstance(select, exp.Star) or select.find(exp.Subquery, exp.Select):
        raise _Unwalkable  # `COUNT(*)` reads no column: only a selected star is unwalkable
    deps: set[ColumnDep] = set()
    for column in select.find_all(exp.Column):
        if isinstance(column.this, exp.Star):  # `t.*`, left unexpanded
            raise _Unwalkable
        source = scope.sources.get(column.table)
        if isinstance(source, exp.Table):
            if not isinstance(source.this, exp.Identifier):  # a table function
                raise _Unwalkable
            upstream = _model_name(source.catalog, source.db, source.name, default_catalog, dialect)
            deps.add(ColumnDep(upstream, column.name))
        elif isinstance(source, Scope) and isinstance(source.expression, exp.Select):
            named = [s for s in source.expression.selects if s.alias_or_name == column.name]
            if len(named) != 1:
                raise _Unwalkable
            deps |= _select_deps(named[0], source, dialect, default_catalog)
        else:  # no table, a set operation, a lateral or an unnest
            raise _Unwalkable
    return deps


def _lineage_nodes(model: Any) -> list[tuple[str, Node]]:
    """Every output column's lineage graph. SQLMesh's rendered query is qualified already unless
    the model turned `optimize_query` off; then SQLMesh's own lineage qualifies it first."""
    if model.optimize_query is False:
        try:
            return [
                (name, sqlmesh_lineage.lineage(exp.column(name, quoted=True), model, False))
                for name in model.columns_to_types or {}
            ]
        finally:  # SQLMesh keeps each model's qualified query for its UI; a load needs it once
            sqlmesh_lineage.CACHE.pop(model.name, None)
    query = model.render_query()
    scope = build_scope(query) if query is not None else None
    if scope is None:
        return []
    # `copy=False`: the query is SQLMesh's cached one, which lineage only reads.
    nodes = sqlglot_lineage(
        None, sql=query, scope=scope, trim_selects=False, dialect=model.dialect, copy=False
    )
    return list(nodes.items())


def _column(name: str, node: Node, dialect: str, default_catalog: str | None) -> ColumnLineageSpec:
    deps: set[ColumnDep] = set()
    for leaf in node.walk():
        if leaf.downstream:
            continue
        table = leaf.expression.find(exp.Table)
        if table is None:  # a literal, or a column of no table
            continue
        upstream = _model_name(table.catalog, table.db, table.name, default_catalog, dialect)
        deps.add(ColumnDep(upstream, _column_name(leaf.name)))
    return ColumnLineageSpec(name, tuple(sorted(deps, key=lambda d: (d.model, d.column))))


@lru_cache(maxsize=4096)
def _model_name(
    catalog: str, db: str, table: str, default_catalog: str | None, dialect: str
) -> str:
    """The upstream's name as SQLMesh names models (`model.fqn`); models share few upstreams."""
    return normalize_model_name(
        exp.table_(table, db or None, catalog or None, quoted=True),
        default_catalog=default_catalog,
        dialect=dialect,
    )


@lru_cache(maxsize=4096)
def _column_name(node_name: str) -> str:
    """`alias.column` of a lineage leaf -> the column; columns repeat across models."""
    return exp.to_column(node_name).name


def definition_line(model: Any) -> int | None:
    """The 1-based line a model is defined at in its file: SQLMesh records the file (`_path`) but
    no line (0.236), so this finds the `MODEL (` statement of a SQL file, or the `def` of a Python
    model's entrypoint. None when neither is found (a YAML-declared external model)."""
    path = getattr(model, "_path", None)
    if not path:
        return None
    if model.is_python:
        pattern = re.compile(rf"^\s*def\s+{re.escape(model.entrypoint)}\s*\(", re.MULTILINE)
    elif str(path).endswith(".sql"):  # SQL and seed models
        pattern = _MODEL_STATEMENT
    else:
        return None
    return _line_of(Path(path), pattern)


def _file_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _line_of(path: Path, pattern: re.Pattern[str]) -> int | None:
    text = _file_text(path)
    match = pattern.search(text) if text is not None else None
    return text.count("\n", 0, match.start()) + 1 if match else None
