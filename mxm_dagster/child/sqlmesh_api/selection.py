"""SQLMesh's model selection syntax (`--select-model`), resolved by SQLMesh's own selector."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmesh import Context


def select_model_names(context: Context, select: Sequence[str], exclude: Sequence[str]) -> set[str]:
    """The fully qualified names of the models `select` picks (every model when empty), minus
    those `exclude` picks: `+name`, `name+`, wildcards, `tag:x`, `&`, `|`, `^` as in
    `sqlmesh plan --select-model`.

    The selector is built without state: `Context._new_selector` would open the state
    connection (the warehouse itself for DuckDB state), which name and tag selection never reads.
    """
    selector = context._selector_cls(
        None,  # type: ignore[arg-type]
        models=context._models,
        context_path=context.path,
        dag=context.dag,
        default_catalog=context.default_catalog,
        dialect=context.default_dialect,
        cache_dir=context.cache_dir,
    )
    chosen = set(selector.expand_model_selections(select)) if select else set(context._models)
    if exclude:
        chosen -= set(selector.expand_model_selections(exclude))
    return chosen
