"""The justETF reference flow's one Python asset: it lands the shipped daily-quotes snapshot.

SQLMesh declares `landing.etf_daily_quotes` as an external model; this asset produces it under the
same asset key, so lineage runs from here into the SQLMesh models. It lands into the gateway's
DuckDB file, or, for the config's `postgres` gateway, into the PostgreSQL database the
MXM_SQLMESH_WAREHOUSE_* variables name: the same variables, with the same defaults, that
sqlmesh_project/config.yaml reads for that gateway's warehouse connection.
"""

import os
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2

from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.common.errors import WarehouseBusyError
from mxm_dagster.common.locks import file_lock
from mxm_dagster.project.sqlmesh_project import SQLMeshProject
from mxm_dagster.records.specs import LoadedModels

LANDING_SCHEMA = "landing"
LANDING_TABLE = "etf_daily_quotes"
SNAPSHOT_FILE = Path("data") / "etf_daily_quotes.csv"
# Pinned to the external model's declared columns (sqlmesh_project/external_models.yaml).
SNAPSHOT_COLUMNS = (
    "{'trade_date': 'DATE', 'isin': 'VARCHAR', 'close_price': 'DOUBLE', "
    "'currency': 'VARCHAR', 'volume': 'BIGINT'}"
)


def _write_landing_table(warehouse: Path, snapshot: Path) -> int:
    try:
        connection = duckdb.connect(str(warehouse))
    except duckdb.IOException as exc:
        raise WarehouseBusyError(f"Cannot open the warehouse {warehouse}: {exc}") from exc
    try:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {LANDING_SCHEMA}")
        connection.execute(
            f"CREATE OR REPLACE TABLE {LANDING_SCHEMA}.{LANDING_TABLE} AS "
            f"SELECT * FROM read_csv(?, header = true, columns = {SNAPSHOT_COLUMNS})",
            [str(snapshot)],
        )
        row = connection.execute(
            f"SELECT COUNT(*) FROM {LANDING_SCHEMA}.{LANDING_TABLE}"
        ).fetchone()
        return int(row[0]) if row else 0
    finally:
        connection.close()


#: The gateway of sqlmesh_project/config.yaml whose warehouse is PostgreSQL.
POSTGRES_GATEWAY = "postgres"
_PG_TYPES = "trade_date DATE, isin TEXT, close_price DOUBLE PRECISION, currency TEXT, volume BIGINT"


def postgres_warehouse() -> dict[str, str | int]:
    """psycopg2 arguments of the `postgres` gateway's warehouse, as config.yaml resolves them."""
    env = os.environ.get
    return {
        "host": env("MXM_SQLMESH_WAREHOUSE_HOST", "127.0.0.1"),
        "port": int(env("MXM_SQLMESH_WAREHOUSE_PORT", "5432")),
        "dbname": env("MXM_SQLMESH_WAREHOUSE_DB", "postgres"),
        "user": env("MXM_SQLMESH_WAREHOUSE_USER", "postgres"),
        "password": env("MXM_SQLMESH_WAREHOUSE_PASSWORD", ""),
        "connect_timeout": 10,
    }


def land_into_postgres(arguments: dict[str, str | int], snapshot: Path) -> int:
    """Replace the rows in one transaction; TRUNCATE, not DROP, since SQLMesh's views on the
    table depend on it. A transaction-scoped advisory lock makes concurrent landings take turns.
    """
    table = f"{LANDING_SCHEMA}.{LANDING_TABLE}"
    connection = psycopg2.connect(**arguments)
    try:
        with connection, connection.cursor() as cursor, snapshot.open() as data:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {LANDING_SCHEMA}")
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_PG_TYPES})")
            cursor.execute(f"TRUNCATE {table}")
            cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", data)
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            row = cursor.fetchone()
        return int(row[0]) if row else 0
    finally:
        connection.close()


def landing_assets(
    project: SQLMeshProject, spec: LoadedModels, translator: SQLMeshTranslator
) -> list[dg.AssetsDefinition]:
    """The landing asset, when the project declares the landing table and ships the snapshot."""
    snapshot = project.path / SNAPSHOT_FILE
    external = next(
        (
            m
            for m in spec.models
            if m.is_external and (m.schema, m.table) == (LANDING_SCHEMA, LANDING_TABLE)
        ),
        None,
    )
    if external is None or not snapshot.is_file():
        return []
    on_postgres = project.warehouse_path is None and project.gateway_name == POSTGRES_GATEWAY

    @dg.asset(
        key=translator.get_asset_key(external),
        group_name=LANDING_SCHEMA,
        kinds={"python", "postgres" if on_postgres else "duckdb"},
        owners=["team:data_platform"],
        description=external.description
        or f"Daily ETF quotes landed from the shipped snapshot {SNAPSHOT_FILE}",
        metadata={"source": str(SNAPSHOT_FILE), "dagster/table_name": external.name},
        # Run before the SQLMesh steps that are ready at the same time, so the run's one SQLMesh
        # execution already sees the landed data.
        op_tags={"dagster/priority": "100"},
        backfill_policy=dg.BackfillPolicy.single_run(),  # joins partition-range runs (ADR 5)
    )
    def etf_daily_quotes(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if on_postgres:
            arguments = postgres_warehouse()
            rows = land_into_postgres(arguments, snapshot)
            where = f"postgres://{arguments['host']}:{arguments['port']}/{arguments['dbname']}"
            return dg.MaterializeResult(metadata={"dagster/row_count": rows, "warehouse": where})
        warehouse = project.warehouse_path
        if warehouse is None:
            raise dg.Failure(
                f"Gateway {project.gateway_name!r} has no DuckDB warehouse to land into"
            )
        with file_lock(project.lock_path, 600, context.log.info, "SQLMesh project lock"):
            rows = _write_landing_table(warehouse, snapshot)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "warehouse": str(warehouse)}
        )

    return [etf_daily_quotes]
