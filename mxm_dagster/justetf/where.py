"""Prints where the materialized data is and how to look at it (the end of `make run`)."""

from __future__ import annotations

import duckdb

from mxm_dagster.project.sqlmesh_project import SQLMeshProject


def main() -> None:
    project = SQLMeshProject.from_env()
    warehouse = project.warehouse_path
    print(
        f"\nSQLMesh project: {project.path} (gateway {project.gateway_name}, "
        f"environment {project.environment})"
    )
    if warehouse is None or not warehouse.exists():
        print("The warehouse is not a local DuckDB file; see the gateway's connection.")
        return
    print(f"Warehouse (DuckDB): {warehouse}")
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'VIEW' AND table_schema NOT LIKE 'sqlmesh%' ORDER BY 1, 2"
        ).fetchall()
        for schema, name in rows:
            count = connection.execute(f'SELECT COUNT(*) FROM "{schema}"."{name}"').fetchone()
            print(f"  {schema}.{name:<28} {count[0] if count else 0:>8} rows")
    print(
        f'\nQuery it:   .venv/bin/python -c "import duckdb; '
        f"print(duckdb.connect('{warehouse}', read_only=True).sql('FROM marts.ter_comparison'))\""
    )
    print("Open the UI: make ui   (dagster dev on http://127.0.0.1:3000)")


if __name__ == "__main__":
    main()
