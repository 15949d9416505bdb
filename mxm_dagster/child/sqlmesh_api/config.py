"""SQLMesh project configs: loading one folder's config, its gateways and DuckDB file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmesh.core.config import Config
from sqlmesh.core.config.loader import load_configs

from mxm_dagster.common.errors import ProjectLoadError


def _is_remote(path: str) -> bool:
    return path.startswith(("md:", "motherduck:", "s3://", "http"))


def _absolute(path: str, base: Path) -> str:
    if path == ":memory:" or _is_remote(path):
        return path
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _resolve_connection(connection: Any, base: Path) -> Any:
    """Make a DuckDB connection's relative file paths relative to the project, not the cwd."""
    if connection is None or getattr(connection, "type_", None) not in {"duckdb", "motherduck"}:
        return connection
    update: dict[str, Any] = {}
    database = getattr(connection, "database", None)
    if isinstance(database, str):
        update["database"] = _absolute(database, base)
    catalogs = getattr(connection, "catalogs", None)
    if catalogs:
        resolved: dict[str, Any] = {}
        for name, target in catalogs.items():
            if isinstance(target, str):
                resolved[name] = _absolute(target, base)
            elif hasattr(target, "path"):
                resolved[name] = target.model_copy(update={"path": _absolute(target.path, base)})
            else:
                resolved[name] = target
        update["catalogs"] = resolved
    return connection.model_copy(update=update) if update else connection


def load_project_config(project_dir: Path) -> Config:
    """Load config.yaml/config.py with DuckDB paths anchored at the project directory."""
    try:
        configs = load_configs(None, Config, [project_dir])
    except Exception as exc:  # SQLMesh raises ConfigError and plain errors alike
        raise ProjectLoadError(f"Cannot read the SQLMesh config in {project_dir}: {exc}") from exc
    config = next(iter(configs.values()))
    gateways = {
        name: gateway.model_copy(
            update={
                "connection": _resolve_connection(gateway.connection, project_dir),
                "state_connection": _resolve_connection(gateway.state_connection, project_dir),
                "test_connection": _resolve_connection(gateway.test_connection, project_dir),
            }
        )
        for name, gateway in config.gateways.items()
    }
    update: dict[str, Any] = {"gateways": gateways}
    for field_name in ("default_connection", "default_test_connection_"):
        update[field_name] = _resolve_connection(getattr(config, field_name), project_dir)
    return config.model_copy(update=update)


def with_cache_dir(config: Config, cache_dir: Path) -> Config:
    """`config` with SQLMesh's model and query caches in `cache_dir` instead of the project's
    `.cache`: what a read-only project folder needs."""
    return config.model_copy(update={"cache_dir": str(cache_dir)})


def gateway_names(config: Config) -> list[str]:
    return sorted(config.gateways)


def default_gateway(config: Config) -> str:
    return config.default_gateway or next(iter(config.gateways), "")


def warehouse_path(config: Config, gateway: str | None) -> Path | None:
    """The DuckDB file behind a gateway's connection, if it is one: with `catalogs:`, the first
    catalog's, which is SQLMesh's default catalog (`database` and `catalogs` exclude each other)."""
    connection = config.get_connection(gateway or default_gateway(config))
    if getattr(connection, "type_", None) != "duckdb":
        return None
    database = getattr(connection, "database", None)
    catalogs = getattr(connection, "catalogs", None) or {}
    if not database and catalogs:
        first = next(iter(catalogs.values()))
        database = first if isinstance(first, str) else getattr(first, "path", None)
    if database and database != ":memory:" and not _is_remote(database):
        return Path(database)
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
