"""SQLMesh project configs: loading one folder's config, its gateways and DuckDB file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmesh.core.config import Config
from sqlmesh.core.config.loader import load_configs

from mxm_dagster.common.errors import ProjectLoadError


def _is_remote(path: str) -> bool:
    return path.startswith(("md:", "motherduck:", "s3://", "http"))


def load_project_config(project_dir: Path) -> Config:
    """Load config.yaml/config.py as the `sqlmesh` CLI does.

    Relative paths in it (a DuckDB `database:` file, `catalogs:`, extensions) are left as they
    are: SQLMesh runs in the project folder (common/interpreter.py), where they mean what they
    mean to the CLI run there.
    """
    try:
        configs = load_configs(None, Config, [project_dir])
    except Exception as exc:  # SQLMesh raises ConfigError and plain errors alike
        raise ProjectLoadError(f"Cannot read the SQLMesh config in {project_dir}: {exc}") from exc
    return next(iter(configs.values()))


def with_cache_dir(config: Config, cache_dir: Path) -> Config:
    """`config` with SQLMesh's model and query caches in `cache_dir` instead of the project's
    `.cache`: what a read-only project folder needs."""
    return config.model_copy(update={"cache_dir": str(cache_dir)})


def gateway_names(config: Config) -> list[str]:
    return sorted(config.gateways)


def default_gateway(config: Config) -> str:
    return config.default_gateway or next(iter(config.gateways), "")


def warehouse_path(config: Config, gateway: str | None, project_dir: Path) -> Path | None:
    """The DuckDB file behind a gateway's connection, if it is one: with `catalogs:`, the first
    catalog's, which is SQLMesh's default catalog (`database` and `catalogs` exclude each other).

    Absolute, for the locks and the spec that other processes read: a relative path is the file
    DuckDB opens in `project_dir`, SQLMesh's working directory."""
    connection = config.get_connection(gateway or default_gateway(config))
    if getattr(connection, "type_", None) != "duckdb":
        return None
    database = getattr(connection, "database", None)
    catalogs = getattr(connection, "catalogs", None) or {}
    if not database and catalogs:
        first = next(iter(catalogs.values()))
        database = first if isinstance(first, str) else getattr(first, "path", None)
    if database and database != ":memory:" and not _is_remote(database):
        return (project_dir / Path(database).expanduser()).resolve()
    return None


def postgres_state(config: Config, gateway: str | None) -> tuple[dict[str, Any], str] | None:
    """psycopg2 connection arguments and the state schema, when the gateway's SQLMesh state is in
    PostgreSQL (its own state connection, or the warehouse connection holding the state too)."""
    name = gateway or default_gateway(config)
    connection = config.get_state_connection(name) or config.get_connection(name)
    if getattr(connection, "type_", None) != "postgres":
        return None
    arguments = {
        "host": connection.host,
        "port": connection.port,
        "user": connection.user,
        "password": connection.password,
        "dbname": connection.database,
        "connect_timeout": 10,
    }
    return arguments, config.get_state_schema(name) or "sqlmesh"
