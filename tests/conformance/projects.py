"""The twin projects the conformance harness runs: three small SQLMesh projects of different shape,
written at test time, and what "another system" lands in their warehouses.

- `retail`: an hourly -> daily -> weekly chain of INCREMENTAL_BY_TIME_RANGE models over an
  external table of orders (external_models.yaml), a `0 6 * * *` model, a seed, a FULL total;
  builtin blocking audits and a custom non-blocking one.
- `ledger`: SCD_TYPE_2_BY_TIME over external accounts, INCREMENTAL_BY_UNIQUE_KEY balances, a
  Python model, a VIEW and a FULL mart with a custom blocking audit.
- `files`: models that read `data/rates.csv` by relative path, with odd files in the folder (a
  dangling symlink, a `.venv`-like folder).

The simulated calendar starts on Monday 2026-11-02; every model starts a week or more before
(`@weekly` needs a complete week before the first plan's end).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from tests.conftest import DUCKDB_CONFIG

WAREHOUSE = "warehouse.duckdb"
DATA_START = "2026-10-19 00:00:00"


@dataclass(frozen=True)
class Project:
    """How to write a project into an empty folder, and its external data up to a time."""

    name: str
    files: dict[str, str]
    land: Callable[[Path, datetime], None]
    extra: Callable[[Path], None] = lambda folder: None

    def write(self, folder: Path, now: datetime) -> Path:
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(DUCKDB_CONFIG)
        for relative, text in self.files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.extra(folder)
        self.land(folder, now)
        return folder


def execute(folder: Path, *statements: str) -> None:
    with duckdb.connect(str(folder / WAREHOUSE)) as connection:
        for statement in statements:
            connection.execute(statement)


# --- retail ---------------------------------------------------------------------------------

RETAIL = {
    "external_models.yaml": """\
- name: landing.orders
  columns:
    order_id: BIGINT
    store_id: INT
    ordered_at: TIMESTAMP
    amount: DECIMAL(12,2)
""",
    "seeds/stores.csv": "store_id,city\n1,Lyon\n2,Porto\n3,Graz\n",
    "models/stores.sql": """\
MODEL (name retail.stores, kind SEED (path '../seeds/stores.csv'),
  columns (store_id INT, city TEXT), audits (unique_values(columns := (store_id))));
""",
    "models/orders_hourly.sql": """\
MODEL (
  name retail.orders_hourly,
  kind INCREMENTAL_BY_TIME_RANGE (time_column hour),
  cron '@hourly',
  start '2026-10-26',
  grain (hour, store_id),
  audits (not_null(columns := (store_id, amount)))
);
SELECT date_trunc('hour', ordered_at) AS hour, store_id, count(*) AS orders,
  sum(amount)::DECIMAL(14,2) AS amount
FROM landing.orders
WHERE ordered_at BETWEEN @start_ts AND @end_ts
GROUP BY 1, 2
""",
    "models/sales_daily.sql": """\
MODEL (
  name retail.sales_daily,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day),
  cron '@daily',
  start '2026-10-26',
  grain (day, store_id),
  audits (
    unique_combination_of_columns(columns := (day, store_id)),
    amount_positive(blocking := false)
  )
);
SELECT h.hour::DATE AS day, h.store_id, s.city, sum(h.orders) AS orders,
  sum(h.amount)::DECIMAL(14,2) AS amount
FROM retail.orders_hourly AS h JOIN retail.stores AS s ON s.store_id = h.store_id
WHERE h.hour BETWEEN @start_ts AND @end_ts
GROUP BY 1, 2, 3
""",
    "models/morning_report.sql": """\
MODEL (
  name retail.morning_report,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day),
  cron '0 6 * * *',
  start '2026-10-26'
);
SELECT day, sum(orders) AS orders, sum(amount)::DECIMAL(14,2) AS amount
FROM retail.sales_daily
WHERE day BETWEEN @start_ds AND @end_ds
GROUP BY 1
""",
    "models/sales_weekly.sql": """\
MODEL (
  name retail.sales_weekly,
  kind INCREMENTAL_BY_TIME_RANGE (time_column week),
  cron '@weekly',
  start '2026-10-19'
);
SELECT date_trunc('week', day)::DATE AS week, store_id, sum(amount)::DECIMAL(14,2) AS amount
FROM retail.sales_daily
WHERE day BETWEEN @start_ds AND @end_ds
GROUP BY 1, 2
""",
    "models/store_totals.sql": """\
MODEL (name retail.store_totals, kind FULL, cron '@daily',
  audits (not_null(columns := (city))));
SELECT s.store_id, s.city, coalesce(sum(d.amount), 0)::DECIMAL(14,2) AS amount
FROM retail.stores AS s LEFT JOIN retail.sales_daily AS d ON d.store_id = s.store_id
GROUP BY 1, 2
""",
    "audits/amount_positive.sql": """\
AUDIT (name amount_positive);
SELECT * FROM @this_model WHERE amount <= 0
""",
}


def land_orders(folder: Path, until: datetime) -> None:
    """Orders of three stores, three per hour, from DATA_START up to `until` (what has not
    landed yet: the table only grows, like a feed)."""
    execute(
        folder,
        "CREATE SCHEMA IF NOT EXISTS landing",
        "CREATE TABLE IF NOT EXISTS landing.orders (order_id BIGINT, store_id INT, "
        "ordered_at TIMESTAMP, amount DECIMAL(12,2))",
        f"""INSERT INTO landing.orders
        SELECT epoch(ts)::BIGINT * 10 + s, s, ts + INTERVAL (s * 7) MINUTE,
          ((hour(ts) * s) % 17 + 1)::DECIMAL(12,2)
        FROM range(
          coalesce((SELECT date_trunc('hour', max(ordered_at)) + INTERVAL 1 HOUR
                    FROM landing.orders), TIMESTAMP '{DATA_START}'),
          TIMESTAMP '{until:%Y-%m-%d %H:00:00}', INTERVAL 1 HOUR) AS t(ts),
          range(1, 4) AS r(s)""",
    )


def correct_orders(day: str, factor: str = "-1") -> Callable[[Path], None]:
    """A past day's amounts corrected by the source (negative: refunds the audit flags)."""

    def correct(folder: Path) -> None:
        execute(
            folder,
            f"UPDATE landing.orders SET amount = amount * {factor} "
            f"WHERE ordered_at::DATE = DATE '{day}'",
        )

    return correct


# --- ledger ---------------------------------------------------------------------------------

LEDGER = {
    "external_models.yaml": """\
- name: src.accounts
  columns:
    account_id: INT
    owner: TEXT
    tier: TEXT
    updated_at: TIMESTAMP
- name: src.transfers
  columns:
    transfer_id: BIGINT
    account_id: INT
    amount: DECIMAL(12,2)
    booked_at: TIMESTAMP
""",
    "models/account_history.sql": """\
MODEL (
  name ledger.account_history,
  kind SCD_TYPE_2_BY_TIME (unique_key account_id, updated_at_name updated_at),
  cron '@daily',
  start '2026-10-26'
);
SELECT account_id, owner, tier, updated_at FROM src.accounts
""",
    "models/balances.sql": """\
MODEL (
  name ledger.balances,
  kind INCREMENTAL_BY_UNIQUE_KEY (unique_key account_id, forward_only true),
  cron '@daily',
  start '2026-10-26',
  audits (unique_values(columns := (account_id)), not_null(columns := (balance)))
);
SELECT account_id, sum(amount)::DECIMAL(14,2) AS balance, max(booked_at) AS last_booked
FROM src.transfers
WHERE booked_at < @end_ts
GROUP BY 1
""",
    "models/tier_fees.py": '''\
"""Fee rates per tier, computed in Python."""

import typing as t
from datetime import datetime

import pandas as pd
from sqlmesh import ExecutionContext, model


@model(
    "ledger.tier_fees",
    kind="FULL",
    cron="@daily",
    start="2026-10-26",
    columns={"tier": "text", "fee_bp": "int"},
)
def execute(
    context: ExecutionContext,
    start: datetime,
    end: datetime,
    execution_time: datetime,
    **kwargs: t.Any,
) -> pd.DataFrame:
    return pd.DataFrame({"tier": ["basic", "plus", "pro"], "fee_bp": [40, 20, 5]})
''',
    "models/current_accounts.sql": """\
MODEL (name ledger.current_accounts, kind VIEW, start '2026-10-26');
SELECT account_id, owner, tier FROM ledger.account_history WHERE valid_to IS NULL
""",
    "models/fees.sql": """\
MODEL (
  name ledger.fees,
  kind FULL,
  cron '@daily',
  start '2026-10-26',
  audits (fee_not_negative)
);
SELECT a.account_id, a.tier, b.balance, (b.balance * f.fee_bp / 10000)::DECIMAL(14,4) AS fee
FROM ledger.current_accounts AS a
JOIN ledger.balances AS b ON b.account_id = a.account_id
JOIN ledger.tier_fees AS f ON f.tier = a.tier
""",
    "audits/fee_not_negative.sql": """\
AUDIT (name fee_not_negative);
SELECT * FROM @this_model WHERE fee < 0
""",
}


def land_ledger(folder: Path, until: datetime) -> None:
    """Four accounts (once), and one transfer per account per day before `until`."""
    execute(
        folder,
        "CREATE SCHEMA IF NOT EXISTS src",
        "CREATE TABLE IF NOT EXISTS src.accounts (account_id INT, owner TEXT, tier TEXT, "
        "updated_at TIMESTAMP)",
        "INSERT INTO src.accounts SELECT i, 'owner' || i, ['basic', 'plus', 'pro'][i % 3 + 1], "
        f"TIMESTAMP '{DATA_START}' FROM range(1, 5) AS t(i) "
        "WHERE NOT EXISTS (SELECT 1 FROM src.accounts)",
        "CREATE TABLE IF NOT EXISTS src.transfers (transfer_id BIGINT, account_id INT, "
        "amount DECIMAL(12,2), booked_at TIMESTAMP)",
        f"""INSERT INTO src.transfers
        SELECT epoch(d)::BIGINT * 10 + a, a, (a * 25 + day(d))::DECIMAL(12,2),
          d + INTERVAL (a) HOUR
        FROM range(
          coalesce((SELECT date_trunc('day', max(booked_at)) + INTERVAL 1 DAY
                    FROM src.transfers), TIMESTAMP '{DATA_START}'),
          TIMESTAMP '{until:%Y-%m-%d} 00:00:00', INTERVAL 1 DAY) AS t(d),
          range(1, 5) AS r(a)""",
    )


def change_tier(account: int, tier: str, at: str) -> Callable[[Path], None]:
    """The source system moves an account to another tier (a new SCD type 2 version)."""

    def change(folder: Path) -> None:
        execute(
            folder,
            f"UPDATE src.accounts SET tier = '{tier}', updated_at = TIMESTAMP '{at}' "
            f"WHERE account_id = {account}",
        )

    return change


def book_transfer(transfer_id: int, account: int, amount: str, at: str) -> Callable[[Path], None]:
    """One extra transfer in the source (a large debit makes a balance, and its fee, negative)."""

    def book(folder: Path) -> None:
        execute(
            folder,
            f"INSERT INTO src.transfers VALUES ({transfer_id}, {account}, {amount}, "
            f"TIMESTAMP '{at}')",
        )

    return book


# --- files ----------------------------------------------------------------------------------

FILES = {
    "data/rates.csv": "currency,rate\nEUR,1.0000\nUSD,1.0850\nCHF,0.9420\n",
    "models/rates.sql": """\
MODEL (name fx.rates, kind FULL, cron '@daily', start '2026-10-26',
  audits (not_null(columns := (currency, rate))));
SELECT currency::TEXT AS currency, rate::DECIMAL(10,4) AS rate
FROM read_csv('data/rates.csv', header = true)
""",
    "models/rate_days.sql": """\
MODEL (
  name fx.rate_days,
  kind INCREMENTAL_BY_TIME_RANGE (time_column day),
  cron '@daily',
  start '2026-10-26'
);
SELECT d::DATE AS day, r.currency, r.rate
FROM generate_series(@start_ds::DATE, @end_ds::DATE, INTERVAL 1 DAY) AS t(d)
CROSS JOIN fx.rates AS r
""",
    "models/strong.sql": """\
MODEL (name fx.strong, kind VIEW, start '2026-10-26');
SELECT currency, rate FROM fx.rates WHERE rate > 1
""",
    "models/rate_summary.sql": """\
MODEL (name fx.rate_summary, kind FULL, cron '@daily', start '2026-10-26',
  audits (unique_values(columns := (currency))));
SELECT currency, count(*) AS days, avg(rate)::DECIMAL(10,4) AS avg_rate
FROM fx.rate_days GROUP BY 1
""",
}


def odd_files(folder: Path) -> None:
    """What real project folders hold besides the project: a dangling symlink, a virtualenv."""
    os.symlink(folder / "exports" / "latest.csv", folder / "latest_export.csv")
    venv = folder / ".venv"
    (venv / "lib" / "python3.11" / "site-packages" / "helper").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib" / "python3.11" / "site-packages" / "helper" / "__init__.py").write_text("")


def no_landing(folder: Path, until: datetime) -> None:
    """The files project reads its CSV; nothing lands in the warehouse."""


def set_rate(currency: str, rate: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        csv = folder / "data" / "rates.csv"
        lines = [
            f"{currency},{rate}" if line.startswith(f"{currency},") else line
            for line in csv.read_text().splitlines()
        ]
        csv.write_text("\n".join(lines) + "\n")

    return change


PROJECTS = {
    "retail": Project("retail", RETAIL, land_orders),
    "ledger": Project("ledger", LEDGER, land_ledger),
    "files": Project("files", FILES, no_landing, extra=odd_files),
}
