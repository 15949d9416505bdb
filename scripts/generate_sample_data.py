"""Generate the justETF sample snapshot shipped with the reference SQLMesh project.

Deterministic (fixed seed), pure standard library, no network. Running it again reproduces the
shipped files byte for byte:

    python scripts/generate_sample_data.py                 # writes into sqlmesh_project/
    python scripts/generate_sample_data.py --out-dir /tmp/x  # writes into /tmp/x/{seeds,data}/

Outputs (relative to the output directory):

``seeds/etf_master.csv`` -- ETF master data, the SEED model ``raw.etf_master``. Columns:
    isin VARCHAR, etf_name VARCHAR, provider VARCHAR, index_name VARCHAR, asset_class VARCHAR,
    ter_pct DECIMAL(5,2), replication VARCHAR, distribution_policy VARCHAR, fund_currency VARCHAR,
    domicile VARCHAR, fund_size_eur_m DECIMAL(12,1), inception_date VARCHAR (ISO date text, cast to
    DATE in staging.stg_etf_master)

``data/etf_daily_quotes.csv`` -- daily closing quotes, loaded by a Dagster asset into the warehouse
table ``landing.etf_daily_quotes`` (declared in ``external_models.yaml``). Exact columns and types,
in file order (DuckDB ``read_csv(..., header=true, columns={...})``):
    trade_date  DATE      -- trading day (ISO yyyy-mm-dd), Mon-Fri minus exchange holidays
    isin        VARCHAR   -- ISIN of the ETF (12 characters, valid check digit)
    close_price DOUBLE    -- closing price in ``currency``, 4 decimals
    currency    VARCHAR   -- trading currency of the listing, always 'EUR' in the sample
    volume      BIGINT    -- shares traded that day

One quote per ETF per trading day from 2023-01-02 to 2024-12-31. The values are simulated (a
per-index random walk plus a small fund-specific tracking error and the TER drag); the master data
is illustrative, loosely modelled on real UCITS ETFs, and is not investment information.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
from pathlib import Path

SEED = 20230102
FIRST_DAY = dt.date(2023, 1, 2)
LAST_DAY = dt.date(2024, 12, 31)
TRADING_DAYS_PER_YEAR = 252

PROJECT_DIR = Path(__file__).resolve().parent.parent / "sqlmesh_project"
MASTER_FILE = Path("seeds") / "etf_master.csv"
QUOTES_FILE = Path("data") / "etf_daily_quotes.csv"

MASTER_COLUMNS = [
    "isin",
    "etf_name",
    "provider",
    "index_name",
    "asset_class",
    "ter_pct",
    "replication",
    "distribution_policy",
    "fund_currency",
    "domicile",
    "fund_size_eur_m",
    "inception_date",
]
QUOTE_COLUMNS = ["trade_date", "isin", "close_price", "currency", "volume"]

# index -> (asset class, annual drift, annual volatility)
INDICES: dict[str, tuple[str, float, float]] = {
    "MSCI World": ("Equity", 0.12, 0.13),
    "S&P 500": ("Equity", 0.15, 0.15),
    "MSCI Emerging Markets": ("Equity", 0.05, 0.16),
    "FTSE All-World": ("Equity", 0.11, 0.13),
    "STOXX Europe 600": ("Equity", 0.07, 0.12),
    "Nasdaq-100": ("Equity", 0.20, 0.22),
    "Bloomberg Global Aggregate EUR Hedged": ("Bonds", 0.02, 0.05),
}

# (ISIN without check digit, name, provider, index, TER %, replication, distribution,
#  fund currency, fund size EUR m, inception date)
ETFS: list[tuple[str, str, str, str, str, str, str, str, str, str]] = [
    ("IE00B4L5Y98", "iShares Core MSCI World UCITS ETF USD (Acc)", "iShares", "MSCI World",
     "0.20", "physical_sampling", "accumulating", "USD", "98450.0", "2009-09-25"),
    ("IE00BJ0KDQ9", "Xtrackers MSCI World UCITS ETF 1C", "Xtrackers", "MSCI World",
     "0.19", "physical_full", "accumulating", "USD", "14530.0", "2014-07-22"),
    ("LU168104359", "Amundi MSCI World UCITS ETF EUR (C)", "Amundi", "MSCI World",
     "0.38", "synthetic", "accumulating", "EUR", "2105.5", "2018-04-18"),
    ("IE00BFY0GT1", "SPDR MSCI World UCITS ETF", "SPDR", "MSCI World",
     "0.12", "physical_sampling", "accumulating", "USD", "11020.0", "2019-02-28"),
    ("IE00B4X9L53", "HSBC MSCI World UCITS ETF USD", "HSBC", "MSCI World",
     "0.15", "physical_full", "distributing", "USD", "9710.0", "2010-12-01"),
    ("IE00B5BMR08", "iShares Core S&P 500 UCITS ETF USD (Acc)", "iShares", "S&P 500",
     "0.07", "physical_full", "accumulating", "USD", "95300.0", "2010-05-19"),
    ("IE00B3XXRP0", "Vanguard S&P 500 UCITS ETF (USD) Distributing", "Vanguard", "S&P 500",
     "0.07", "physical_full", "distributing", "USD", "52120.0", "2012-05-22"),
    ("IE00B6YX5C3", "SPDR S&P 500 UCITS ETF (Dist)", "SPDR", "S&P 500",
     "0.03", "physical_full", "distributing", "USD", "15230.0", "2012-03-19"),
    ("IE00B3YCGJ3", "Invesco S&P 500 UCITS ETF Acc", "Invesco", "S&P 500",
     "0.05", "synthetic", "accumulating", "USD", "30410.0", "2010-05-20"),
    ("LU049061854", "Xtrackers S&P 500 Swap UCITS ETF 1C", "Xtrackers", "S&P 500",
     "0.15", "synthetic", "accumulating", "USD", "8040.0", "2010-03-26"),
    ("IE00BKM4GZ6", "iShares Core MSCI EM IMI UCITS ETF (Acc)", "iShares",
     "MSCI Emerging Markets", "0.18", "physical_sampling", "accumulating", "USD", "21600.0",
     "2014-05-30"),
    ("IE00BTJRMP3", "Xtrackers MSCI Emerging Markets UCITS ETF 1C", "Xtrackers",
     "MSCI Emerging Markets", "0.18", "physical_sampling", "accumulating", "USD", "6030.0",
     "2017-06-21"),
    ("LU168104537", "Amundi MSCI Emerging Markets UCITS ETF EUR (C)", "Amundi",
     "MSCI Emerging Markets", "0.20", "synthetic", "accumulating", "EUR", "3010.0",
     "2018-04-18"),
    ("IE00B469F81", "SPDR MSCI Emerging Markets UCITS ETF", "SPDR", "MSCI Emerging Markets",
     "0.42", "physical_sampling", "accumulating", "USD", "905.0", "2011-05-13"),
    ("IE00BK5BQT8", "Vanguard FTSE All-World UCITS ETF (USD) Accumulating", "Vanguard",
     "FTSE All-World", "0.22", "physical_sampling", "accumulating", "USD", "20350.0",
     "2019-07-23"),
    ("IE00B3RBWM2", "Vanguard FTSE All-World UCITS ETF (USD) Distributing", "Vanguard",
     "FTSE All-World", "0.22", "physical_sampling", "distributing", "USD", "16120.0",
     "2012-05-22"),
    ("IE000716YHJ", "Invesco FTSE All-World UCITS ETF Acc", "Invesco", "FTSE All-World",
     "0.15", "physical_sampling", "accumulating", "USD", "1480.0", "2022-10-06"),
    ("DE000263530", "iShares STOXX Europe 600 UCITS ETF (DE)", "iShares", "STOXX Europe 600",
     "0.20", "physical_full", "distributing", "EUR", "8020.0", "2004-02-13"),
    ("LU032847579", "Xtrackers Stoxx Europe 600 UCITS ETF 1C", "Xtrackers", "STOXX Europe 600",
     "0.20", "physical_full", "accumulating", "EUR", "3540.0", "2007-01-26"),
    ("LU090850075", "Amundi Core Stoxx Europe 600 UCITS ETF Acc", "Amundi", "STOXX Europe 600",
     "0.07", "physical_full", "accumulating", "EUR", "12110.0", "2013-04-17"),
    ("IE00B53SZB1", "iShares Nasdaq 100 UCITS ETF (Acc)", "iShares", "Nasdaq-100",
     "0.33", "physical_full", "accumulating", "USD", "14070.0", "2010-01-26"),
    ("IE003207701", "Invesco EQQQ Nasdaq-100 UCITS ETF", "Invesco", "Nasdaq-100",
     "0.30", "physical_full", "distributing", "USD", "8230.0", "2002-12-02"),
    ("IE00BMFKG44", "Xtrackers Nasdaq 100 UCITS ETF 1C", "Xtrackers", "Nasdaq-100",
     "0.20", "physical_full", "accumulating", "USD", "2050.0", "2021-01-21"),
    ("IE00BDBRDM3", "iShares Core Global Aggregate Bond UCITS ETF EUR Hedged (Acc)", "iShares",
     "Bloomberg Global Aggregate EUR Hedged", "0.10", "physical_sampling", "accumulating",
     "EUR", "3020.0", "2017-11-21"),
    ("LU094297010", "Xtrackers II Global Aggregate Bond Swap UCITS ETF 1D EUR Hedged",
     "Xtrackers", "Bloomberg Global Aggregate EUR Hedged", "0.25", "synthetic", "distributing",
     "EUR", "4005.0", "2013-07-10"),
]  # fmt: skip

DOMICILES = {"IE": "Ireland", "LU": "Luxembourg", "DE": "Germany"}


def isin_check_digit(body: str) -> str:
    """Luhn check digit of an 11-character ISIN body (letters count as 10..35)."""
    digits = "".join(str(int(ch, 36)) for ch in body)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # every second digit from the right, starting with the last
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def exchange_holidays(year: int) -> set[dt.date]:
    """Holidays of the sample exchange (Xetra-like; 31 December is kept as a trading day).

    The Python model ``raw.trading_calendar`` implements the same rule.
    """
    easter = easter_sunday(year)
    return {
        dt.date(year, 1, 1),
        easter - dt.timedelta(days=2),  # Good Friday
        easter + dt.timedelta(days=1),  # Easter Monday
        dt.date(year, 5, 1),
        dt.date(year, 12, 24),
        dt.date(year, 12, 25),
        dt.date(year, 12, 26),
    }


def trading_days(first: dt.date, last: dt.date) -> list[dt.date]:
    holidays: set[dt.date] = set()
    for year in range(first.year, last.year + 1):
        holidays |= exchange_holidays(year)
    days = []
    day = first
    while day <= last:
        if day.weekday() < 5 and day not in holidays:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def master_rows() -> list[list[str]]:
    rows = []
    for body, name, provider, index, ter, repl, dist, ccy, size, inception in ETFS:
        rows.append(
            [
                body + isin_check_digit(body),
                name,
                provider,
                index,
                INDICES[index][0],
                ter,
                repl,
                dist,
                ccy,
                DOMICILES[body[:2]],
                size,
                inception,
            ]
        )
    return rows


def quote_rows(rng: random.Random) -> list[list[str]]:
    days = trading_days(FIRST_DAY, LAST_DAY)
    isins = [row[0] for row in master_rows()]
    # one common daily shock per index, then a fund-specific tracking error on top
    index_shocks = {index: [rng.gauss(0.0, 1.0) for _ in days] for index in INDICES}
    prices: dict[str, list[float]] = {}
    volumes: dict[str, list[int]] = {}
    for isin, etf in zip(isins, ETFS, strict=True):
        index, ter, size = etf[3], float(etf[4]), float(etf[8])
        _, drift, vol = INDICES[index]
        tracking = 0.0008 if etf[5] == "synthetic" else 0.0005
        daily_vol = vol / math.sqrt(TRADING_DAYS_PER_YEAR)
        daily_mu = (drift - ter / 100.0) / TRADING_DAYS_PER_YEAR - 0.5 * daily_vol**2
        price = round(rng.uniform(20.0, 150.0), 2)
        base_volume = max(500, int(size * 4))
        series = []
        vols = []
        for shock in index_shocks[index]:
            price *= math.exp(daily_mu + daily_vol * shock + rng.gauss(0.0, tracking))
            series.append(price)
            vols.append(int(base_volume * rng.uniform(0.3, 1.7)))
        prices[isin] = series
        volumes[isin] = vols
    rows = []
    for i, day in enumerate(days):
        for isin in isins:
            rows.append(
                [day.isoformat(), isin, f"{prices[isin][i]:.4f}", "EUR", str(volumes[isin][i])]
            )
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(out_dir: Path) -> tuple[Path, Path]:
    """Write both sample files under ``out_dir`` and return their paths."""
    rng = random.Random(SEED)
    master_path = out_dir / MASTER_FILE
    quotes_path = out_dir / QUOTES_FILE
    write_csv(master_path, MASTER_COLUMNS, master_rows())
    write_csv(quotes_path, QUOTE_COLUMNS, quote_rows(rng))
    return master_path, quotes_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=PROJECT_DIR,
        help="directory that receives seeds/etf_master.csv and data/etf_daily_quotes.csv",
    )
    args = parser.parse_args()
    for path in generate(args.out_dir):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
