"""The fixed scenarios: each a day-by-day story on one twin project, together covering what the
code location must do like raw SQLMesh (see docs/adr/0014-conformance-harness.md)."""

from __future__ import annotations

from tests.conformance.projects import book_transfer, change_tier, correct_orders, set_rate
from tests.conformance.scenario import Scenario
from tests.conformance.steps import Step, day, edit, remove, write

# --- retail: time passes ---------------------------------------------------------------------
RETAIL_CALENDAR = Scenario(
    "retail_calendar",
    "retail",
    (
        Step("first build", day(0)),
        Step("two hours later: only the hourly model is due", day(0, 9), command="run"),
        Step(
            "next day 05:00: the daily model is due, the 6 am one not yet", day(1, 5), command="run"
        ),
        Step(
            "06:30: the 6 am cron comes due; a group selected (daily and morning report)",
            day(1, 6, 30),
            command="run",
            select=("retail.sales_daily", "retail.morning_report"),
        ),
        Step("the hourly model alone", day(1, 10), select=("retail.orders_hourly",)),
        Step(
            "a past day corrected at the source, the hourly model restated",
            day(1, 11),
            changes=(correct_orders("2026-10-28"),),
            select=("retail.orders_hourly",),
            restate=True,
        ),
        Step("next Monday: the weekly model is due", day(7, 7), command="run"),
    ),
)

# --- retail: edits ---------------------------------------------------------------------------
REGION_TOTALS = """\
MODEL (name retail.city_totals, kind FULL, cron '@daily');
SELECT city, sum(amount)::DECIMAL(14,2) AS amount FROM retail.store_totals GROUP BY 1
"""
RETAIL_EDITS = Scenario(
    "retail_edits",
    "retail",
    (
        Step("first build", day(0)),
        Step(
            "breaking edit of the daily model",
            day(0, 12),
            changes=(
                edit(
                    "models/sales_daily.sql",
                    "sum(h.orders) AS orders",
                    "sum(h.orders) * 2 AS orders",
                ),
            ),
        ),
        Step(
            "11-02 corrected into refunds: its daily row fails the non-blocking audit next day",
            day(0, 20),
            changes=(correct_orders("2026-11-02", "-100"),),
            command="run",
        ),
        Step(
            "non-breaking edit: a new column on the hourly model",
            day(1, 7),
            changes=(
                edit(
                    "models/orders_hourly.sql",
                    "count(*) AS orders",
                    "count(*) AS orders, max(amount) AS biggest",
                ),
            ),
        ),
        Step(
            "metadata-only edit, a model added",
            day(1, 8),
            changes=(
                edit("models/store_totals.sql", "kind FULL,", "kind FULL, owner 'finance',"),
                write("models/city_totals.sql", REGION_TOTALS),
            ),
        ),
        Step(
            "audit-only edit, a model removed",
            day(2, 7),
            changes=(
                edit(
                    "models/store_totals.sql",
                    "not_null(columns := (city))",
                    "not_null(columns := (city)), unique_values(columns := (store_id))",
                ),
                remove("models/morning_report.sql"),
            ),
        ),
    ),
)

# --- retail: partitions ----------------------------------------------------------------------
RETAIL_PARTITIONS = Scenario(
    "retail_partitions",
    "retail",
    (
        Step("first build, partitions off", day(0)),
        Step(
            "a day later, partitions on",
            day(1, 7),
            partitions=True,
            select=("retail.sales_daily",),
            window=("2026-11-02", "2026-11-02"),
        ),
        Step(
            "two past days corrected, their range restated",
            day(1, 9),
            changes=(correct_orders("2026-10-29", "2"),),
            partitions=True,
            select=("retail.sales_daily",),
            window=("2026-10-29", "2026-10-30"),
            restate=True,
        ),
        Step("partitions off again: everything", day(1, 10)),
    ),
)

# --- retail: a dev plan while prod's crons are due (found by random seed 2) ------------------
RETAIL_DEV_WHILE_DUE = Scenario(
    "retail_dev_while_due",
    "retail",
    (
        Step("first build", day(0)),
        Step(
            "next day 02:00, before prod ran: a breaking edit planned in dev",
            day(1, 2),
            changes=(edit("models/morning_report.sql", " AS amount", " + 1 AS amount"),),
            environment="dev",
        ),
        Step("promoted to prod", day(1, 3)),
    ),
)

# --- ledger: failures, environments, forward-only ---------------------------------------------
LEDGER_LIFE = Scenario(
    "ledger_life",
    "ledger",
    (
        Step("first build", day(0)),
        Step(
            "an account changes tier; a day passes",
            day(1, 7),
            changes=(change_tier(2, "pro", "2026-11-02 15:00:00"),),
            command="run",
        ),
        Step(
            "a large debit: a negative fee fails the blocking audit of fees",
            day(2, 7),
            changes=(book_transfer(1, 3, "-99999", "2026-11-03 20:00:00"),),
        ),
        Step(
            "fees broken, fee rates edited in the same change; the debit reversed",
            day(2, 9),
            changes=(
                edit("models/fees.sql", "b.balance, (", "b.balance, no_such_column, ("),
                edit("models/tier_fees.py", "[40, 20, 5]", "[45, 20, 5]"),
                book_transfer(2, 3, "99999", "2026-11-03 21:00:00"),
            ),
            # Failure isolation cannot promote the new fee rates without fees: SQLMesh would give
            # fees (left out, read from prod) a new version it never builds and fail promoting
            # its view, leaving prod's record on a version without a table (raw
            # plan(select_models=[all but fees]) fails alike). The re-plan holds tier_fees back
            # (ADR 4), so prod serves what raw SQLMesh's failed plan leaves: no difference.
        ),
        Step(
            "fees fixed; forward-only balances: a column added",
            day(3, 7),
            changes=(
                edit("models/fees.sql", "b.balance, no_such_column, (", "b.balance, ("),
                edit(
                    "models/balances.sql",
                    "AS balance, max(booked_at)",
                    "AS balance, count(*) AS transfers, max(booked_at)",
                ),
            ),
        ),
        Step(
            "fees edited in dev",
            day(3, 8),
            changes=(edit("models/fees.sql", "/ 10000", "/ 1000"),),
            environment="dev",
        ),
        Step("dev promoted to prod", day(3, 9)),
    ),
)

# --- files: the CLI path, a CSV read by relative path, odd files -----------------------------
FILES_CLI = Scenario(
    "files_cli",
    "files",
    (
        Step("first build through the CLI", day(0), cli=True),
        Step(
            "the CSV edited; rates restated through the CLI",
            day(1, 7),
            changes=(set_rate("USD", "1.1000"),),
            select=("fx.rates",),
            restate=True,
            cli=True,
        ),
    ),
)

FIXED = (
    RETAIL_CALENDAR,
    RETAIL_EDITS,
    RETAIL_PARTITIONS,
    RETAIL_DEV_WHILE_DUE,
    LEDGER_LIFE,
    FILES_CLI,
)
