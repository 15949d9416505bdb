"""A loaded Context's models as plain `ModelSpec` records."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlmesh import Context

from mxm_dagster.child.sqlmesh_api import bounds
from mxm_dagster.child.sqlmesh_api.console import check_names, rendered_args, sql_text
from mxm_dagster.child.sqlmesh_api.lineage import column_lineage, definition_line
from mxm_dagster.common.names import safe_name
from mxm_dagster.records.specs import AuditSpec, ColumnSpec, LoadedModels, ModelSpec


def _audit_specs(model: Any) -> tuple[AuditSpec, ...]:
    specs: list[AuditSpec] = []
    uses = list(model.audits_with_args)
    for (audit, args), check_name in zip(uses, check_names(uses), strict=True):
        blocking_arg = args.get("blocking")
        blocking = (
            audit.blocking if blocking_arg is None else sql_text(blocking_arg).upper() == "TRUE"
        )
        specs.append(
            AuditSpec(audit.name, check_name, blocking, rendered_args(args), skip=audit.skip)
        )
    return tuple(specs)


def _with_standalone_audits(context: Context, models: dict[str, ModelSpec]) -> None:
    """Attach each standalone audit to the model it queries (ADR 3): with several, the most
    downstream one, the others as the check's extra dependencies. One that queries no model of
    the project becomes no check (nothing in Dagster to report it on)."""
    if not context.standalone_audits:
        return  # most projects: no DAG sort to pay for
    order = {name: i for i, name in enumerate(context.dag.sorted)}
    for audit in sorted(context.standalone_audits.values(), key=lambda a: a.name):
        queried = sorted(
            (n for n in audit.depends_on if n in models and models[n].is_model),
            key=lambda n: (order.get(n, -1), n),
        )
        if not queried:
            continue
        target = models[queried[-1]]
        taken = {a.check_name for a in target.audits}
        check_name = safe_name(audit.name)
        while check_name in taken:
            check_name = f"{check_name}_standalone"
        spec = AuditSpec(
            audit.name,
            check_name,
            blocking=False,  # SQLMesh refuses blocking standalone audits (0.236)
            skip=audit.skip,
            standalone=True,
            reads=tuple(queried[:-1]),
        )
        models[target.name] = replace(target, audits=(*target.audits, spec))


@lru_cache(maxsize=1024)
def _type_sql(data_type: Any, dialect: str) -> str:
    """A column type as SQL. Projects repeat a handful of types across thousands of columns, and
    generating the SQL of a type is most of what introspecting a model costs."""
    return data_type.sql(dialect=dialect)


def _column_specs(model: Any) -> tuple[ColumnSpec, ...]:
    try:
        columns = model.columns_to_types or {}
    except Exception:  # a model whose columns cannot be inferred still loads
        columns = {}
    descriptions = model.column_descriptions or {}
    return tuple(
        ColumnSpec(name, _type_sql(data_type, model.dialect), descriptions.get(name))
        for name, data_type in columns.items()
    )


#: Kinds SQLMesh never evaluates: an EXTERNAL table is another system's, an EMBEDDED model is
#: inlined as a subquery into the models that read it and has no table, intervals or audit run
#: (measured on 0.236: no intervals recorded, no physical table). Their assets are sources, not
#: steps: a step would report an outcome SQLMesh never had.
_KINDS_WITHOUT_TABLE = {"EXTERNAL", "EMBEDDED"}


def _kind(model: Any) -> str:
    return model.kind.name.value if hasattr(model.kind.name, "value") else str(model.kind.name)


def _model_spec(model: Any, at: datetime, default_catalog: str | None) -> ModelSpec:
    """`at`: the moment relative starts and ends resolve against."""
    table = model.fully_qualified_table
    kind = _kind(model)
    is_external = kind in _KINDS_WITHOUT_TABLE
    time_column = getattr(model.kind, "time_column", None)
    path = getattr(model, "_path", None)
    return ModelSpec(
        name=model.fqn,
        catalog=table.catalog or None,
        schema=table.db,
        table=table.name,
        kind=kind,
        is_external=is_external,
        depends_on=tuple(sorted(model.depends_on)),
        description=model.description,
        owner=model.owner,
        tags=tuple(model.tags),
        columns=_column_specs(model),
        audits=() if is_external else _audit_specs(model),
        cron=None if is_external else model.cron,
        interval_unit=None if is_external else model.interval_unit.value,
        start=None if is_external or model.start is None else str(model.start),
        start_ms=None if is_external or model.start is None else bounds.resolve(model.start, at),
        end=None if is_external or model.end is None else str(model.end),
        end_ms=None if is_external or model.end is None else bounds.resolve(model.end, at, True),
        cron_tz=None if is_external or not model.cron_tz else str(model.cron_tz),
        time_column=time_column.column.name if time_column is not None else None,
        grain=tuple(g.sql() for g in getattr(model, "grains", ()) or ()),
        data_hash=model.data_hash,
        file_path=str(path) if path else None,
        file_line=definition_line(model),
        dialect=model.dialect,
        column_lineage=column_lineage(model, default_catalog),
    )


def _source_spec(name: str) -> ModelSpec:
    """A table a model reads that the project does not declare: still shown as a source."""
    parts = [p.strip('"') for p in name.split(".")]
    catalog, schema, table = ([None] * (3 - len(parts)) + parts)[-3:]
    return ModelSpec(
        name=name,
        catalog=catalog,
        schema=schema or "",
        table=table or name,
        kind="EXTERNAL",
        is_external=True,
    )


def _valid_until(context: Context, at: datetime) -> int | None:
    """When the first relative start or end would resolve into another interval (module
    `bounds`); None when every start and end is absolute."""
    moments = [
        bounds.holds_until(value, model.interval_unit, at)
        for model in context.models.values()
        if _kind(model) not in _KINDS_WITHOUT_TABLE
        for value in (model.start, model.end)
        if value is not None
    ]
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


def project_spec(context: Context) -> LoadedModels:
    """The models as SQLMesh resolves them now; `valid_until` says until when that holds."""
    at = bounds.resolution_moment()
    catalog = context.default_catalog
    models = {model.fqn: _model_spec(model, at, catalog) for model in context.models.values()}
    for spec in list(models.values()):
        for parent in spec.depends_on:
            models.setdefault(parent, _source_spec(parent))
    _with_standalone_audits(context, models)
    engine = context.engine_adapter.dialect
    return LoadedModels(
        default_catalog=context.default_catalog,
        dialect=context.default_dialect or engine,
        engine=engine,
        models=tuple(sorted(models.values(), key=lambda m: m.name)),
        valid_until=_valid_until(context, at),
    )
