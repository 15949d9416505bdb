"""The justETF reference SQLMesh project, exercised with raw SQLMesh and DuckDB (no Dagster).

Every SQLMesh command runs in a subprocess with its working directory set to a temporary copy of
the project: SQLMesh resolves the relative ``database: justetf.duckdb`` against the current
directory, keeps process-wide state (console, cached DuckDB adapters) and holds DuckDB's
single-writer lock while it runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "sqlmesh_project"
GENERATOR = REPO / "scripts" / "generate_sample_data.py"
MASTER_CSV = PROJECT / "seeds" / "etf_master.csv"
QUOTES_CSV = PROJECT / "data" / "etf_daily_quotes.csv"
SQLMESH = Path(sys.executable).with_name("sqlmesh")

# The exact landing table the Dagster landing asset produces from QUOTES_CSV.
LANDING_COLUMNS = {
    "trade_date": "DATE",
    "isin": "VARCHAR",
    "close_price": "DOUBLE",
    "currency": "VARCHAR",
    "volume": "BIGINT",
}

# model -> SQLMesh model kind
EXPECTED_MODELS = {
    "raw.etf_master": "SEED",
    "raw.trading_calendar": "FULL",
    "staging.stg_etf_master": "VIEW",
    "staging.stg_daily_quotes": "INCREMENTAL_BY_TIME_RANGE",
    "staging.stg_latest_quotes": "INCREMENTAL_BY_UNIQUE_KEY",
    "marts.daily_returns": "INCREMENTAL_BY_TIME_RANGE",
    "marts.drawdowns": "VIEW",
    "marts.monthly_returns": "FULL",
    "marts.trailing_performance": "FULL",
    "marts.risk_metrics": "FULL",
    "marts.ter_comparison": "FULL",
    "marts.etf_cost_ranking": "VIEW",
    "marts.fund_overview": "FULL",
}

pytestmark = pytest.mark.timeout(300)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _copy_project(destination: Path) -> Path:
    shutil.copytree(
        PROJECT,
        destination,
        ignore=shutil.ignore_patterns(".cache", "logs", "*.duckdb", "*.duckdb.wal"),
    )
    return destination


def _land_quotes(project_dir: Path) -> None:
    """What the Dagster landing asset does: the CSV into landing.etf_daily_quotes."""
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in LANDING_COLUMNS.items())
    connection = duckdb.connect(str(project_dir / "justetf.duckdb"))
    try:
        connection.execute("CREATE SCHEMA IF NOT EXISTS landing")
        connection.execute(
            "CREATE OR REPLACE TABLE landing.etf_daily_quotes AS SELECT * FROM "
            f"read_csv(?, header = true, columns = {{{columns}}})",
            [str(project_dir / "data" / "etf_daily_quotes.csv")],
        )
    finally:
        connection.close()


def _env() -> dict[str, str]:
    # wide console so that SQLMesh's progress lines ("..., audits passed 5") are not wrapped
    return {
        **os.environ,
        "SQLMESH__DISABLE_ANONYMIZED_ANALYTICS": "1",
        "NO_COLOR": "1",
        "COLUMNS": "250",
    }


def _sqlmesh(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SQLMESH), *args],
        cwd=project_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _python(project_dir: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=project_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )


# --- the shipped sample data ---------------------------------------------------------------------


def test_generator_reproduces_the_shipped_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for shipped in (MASTER_CSV, QUOTES_CSV):
        regenerated = tmp_path / shipped.relative_to(PROJECT)
        assert regenerated.read_bytes() == shipped.read_bytes(), f"{shipped} is not reproducible"
    assert MASTER_CSV.stat().st_size + QUOTES_CSV.stat().st_size < 1_000_000


def test_sample_data_shape() -> None:
    spec = importlib.util.spec_from_file_location("generate_sample_data", GENERATOR)
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)

    master = _read_csv(MASTER_CSV)
    quotes = _read_csv(QUOTES_CSV)
    isins = [row["isin"] for row in master]
    assert len(isins) >= 22 and len(set(isins)) == len(isins)
    for isin in isins:
        assert isin[:2] in {"IE", "LU", "DE"} and generator.isin_check_digit(isin[:11]) == isin[11]
    per_index: dict[str, int] = defaultdict(int)
    for row in master:
        per_index[row["index_name"]] += 1
    assert len(per_index) >= 5 and min(per_index.values()) >= 2

    assert list(quotes[0]) == list(LANDING_COLUMNS)
    dates = sorted({row["trade_date"] for row in quotes})
    assert dates[0] == "2023-01-02" and dates[-1] == "2024-12-31"
    assert len(quotes) == len(dates) * len(isins), "every ETF needs a quote on every trading day"
    parsed = [dt.date.fromisoformat(day) for day in dates]
    assert all(day.weekday() < 5 for day in parsed)
    assert dt.date(2023, 12, 25) not in parsed and dt.date(2024, 3, 29) not in parsed  # holidays
    assert all(float(row["close_price"]) > 0 for row in quotes)


# --- SQLMesh unit tests --------------------------------------------------------------------------


def test_sqlmesh_unit_tests_pass(tmp_path: Path) -> None:
    project_dir = _copy_project(tmp_path / "project")
    result = _sqlmesh(project_dir, "test")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Successfully Ran `6` Tests" in output, output


# --- a full plan on a fresh warehouse -------------------------------------------------------------


@pytest.fixture(scope="module")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project_dir = _copy_project(tmp_path_factory.mktemp("justetf") / "project")
    _land_quotes(project_dir)
    result = _sqlmesh(project_dir, "plan", "--auto-apply", "--no-prompts", "--skip-tests")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "failed" not in output.lower() and "[WARNING]" not in output, output
    assert output.count("audits passed") == len(EXPECTED_MODELS), output
    return project_dir


@pytest.fixture()
def warehouse(built_project: Path):
    connection = duckdb.connect(str(built_project / "justetf.duckdb"), read_only=True)
    try:
        yield connection
    finally:
        connection.close()


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str):
    row = connection.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_every_model_is_built(warehouse: duckdb.DuckDBPyConnection) -> None:
    objects = {
        f"{schema}.{name}"
        for schema, name in warehouse.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('raw', 'staging', 'marts')"
        ).fetchall()
    }
    assert objects == set(EXPECTED_MODELS)
    for model in EXPECTED_MODELS:
        assert _scalar(warehouse, f"SELECT COUNT(*) FROM {model}") > 0, model


def test_row_counts_follow_the_sample_data(warehouse: duckdb.DuckDBPyConnection) -> None:
    master = _read_csv(MASTER_CSV)
    quotes = _read_csv(QUOTES_CSV)
    n_etfs, n_quotes = len(master), len(quotes)
    n_days = len({row["trade_date"] for row in quotes})
    n_indices = len({row["index_name"] for row in master})

    assert _scalar(warehouse, "SELECT COUNT(*) FROM raw.etf_master") == n_etfs
    assert _scalar(warehouse, "SELECT COUNT(*) FROM staging.stg_etf_master") == n_etfs
    assert _scalar(warehouse, "SELECT COUNT(*) FROM staging.stg_daily_quotes") == n_quotes
    assert _scalar(warehouse, "SELECT COUNT(*) FROM marts.drawdowns") == n_quotes
    # every quote but each ETF's first one has a previous close
    assert _scalar(warehouse, "SELECT COUNT(*) FROM marts.daily_returns") == n_quotes - n_etfs
    # 24 calendar months of quotes give 23 month-over-month returns per ETF
    assert _scalar(warehouse, "SELECT COUNT(*) FROM marts.monthly_returns") == 23 * n_etfs
    for model in (
        "staging.stg_latest_quotes",
        "marts.trailing_performance",
        "marts.risk_metrics",
        "marts.etf_cost_ranking",
        "marts.fund_overview",
    ):
        assert _scalar(warehouse, f"SELECT COUNT(DISTINCT isin) FROM {model}") == n_etfs, model
        assert _scalar(warehouse, f"SELECT COUNT(*) FROM {model}") == n_etfs, model
    assert _scalar(warehouse, "SELECT COUNT(*) FROM marts.ter_comparison") == n_indices
    # the Python calendar model and the generator share the holiday rule
    calendar_days = _scalar(
        warehouse,
        "SELECT COUNT(*) FROM raw.trading_calendar "
        "WHERE trade_date BETWEEN '2023-01-02' AND '2024-12-31'",
    )
    assert calendar_days == n_days
    assert (
        _scalar(
            warehouse,
            "SELECT COUNT(*) FROM staging.stg_daily_quotes q "
            "ANTI JOIN raw.trading_calendar c ON q.trade_date = c.trade_date",
        )
        == 0
    )


def test_returns_match_the_csv(warehouse: duckdb.DuckDBPyConnection) -> None:
    closes: dict[str, dict[str, float]] = defaultdict(dict)
    for row in _read_csv(QUOTES_CSV):
        closes[row["isin"]][row["trade_date"]] = float(row["close_price"])
    isin = "IE00B4L5Y983"
    prices = closes[isin]

    # the first day after the New Year holiday compares with the last close of 2023
    got = _scalar(
        warehouse,
        f"SELECT daily_return FROM marts.daily_returns "
        f"WHERE isin = '{isin}' AND trade_date = '2024-01-02'",
    )
    assert got == pytest.approx(prices["2024-01-02"] / prices["2023-12-29"] - 1, rel=1e-12)

    perf = warehouse.execute(
        "SELECT as_of_date, last_close, return_1m, return_ytd, return_1y, return_since_start "
        f"FROM marts.trailing_performance WHERE isin = '{isin}'"
    ).fetchone()
    assert perf is not None
    as_of, last_close, return_1m, return_ytd, return_1y, since_start = perf
    assert as_of == dt.date(2024, 12, 31) and last_close == prices["2024-12-31"]
    assert return_1m == pytest.approx(prices["2024-12-31"] / prices["2024-11-29"] - 1)
    assert return_ytd == pytest.approx(prices["2024-12-31"] / prices["2023-12-29"] - 1)
    assert return_1y == pytest.approx(return_ytd)
    assert since_start == pytest.approx(prices["2024-12-31"] / prices["2023-01-02"] - 1)

    # volatility: stdev of daily log returns, annualised with 252 trading days
    ordered = [prices[day] for day in sorted(prices)]
    logs = [math.log(b / a) for a, b in zip(ordered, ordered[1:], strict=False)]
    expected_vol = statistics.stdev(logs) * 252**0.5
    got_vol = _scalar(
        warehouse, f"SELECT volatility_ann FROM marts.risk_metrics WHERE isin = '{isin}'"
    )
    assert got_vol == pytest.approx(expected_vol, rel=1e-9)

    # max drawdown: deepest fall below the running peak
    peak, deepest = ordered[0], 0.0
    for price in ordered:
        peak = max(peak, price)
        deepest = min(deepest, price / peak - 1)
    got_dd = _scalar(
        warehouse, f"SELECT max_drawdown FROM marts.risk_metrics WHERE isin = '{isin}'"
    )
    assert got_dd == pytest.approx(deepest, rel=1e-9)


def test_risk_metrics_are_sensible(warehouse: duckdb.DuckDBPyConnection) -> None:
    rows = warehouse.execute(
        "SELECT r.isin, m.asset_class, r.volatility_ann, r.max_drawdown, r.current_drawdown, "
        "r.peak_date, r.trough_date FROM marts.risk_metrics r "
        "JOIN staging.stg_etf_master m USING (isin)"
    ).fetchall()
    assert rows
    for _isin, asset_class, vol, max_dd, current_dd, peak, trough in rows:
        assert 0 < vol < 0.5
        assert -1 < max_dd < 0 and max_dd <= current_dd <= 0
        assert peak <= trough
        if asset_class == "Bonds":
            assert vol < 0.08
        else:
            assert vol > 0.09


def test_ter_comparison_per_index(warehouse: duckdb.DuckDBPyConnection) -> None:
    by_index: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in _read_csv(MASTER_CSV):
        by_index[row["index_name"]].append(row)

    rows = warehouse.execute(
        "SELECT index_name, n_etfs, cheapest_isin, min_ter_pct, avg_ter_pct, max_ter_pct, "
        "ter_spread_pct, ter_spread_bps FROM marts.ter_comparison"
    ).fetchall()
    assert {row[0] for row in rows} == set(by_index)
    for index, n_etfs, cheapest, min_ter, avg_ter, max_ter, spread, spread_bps in rows:
        etfs = by_index[index]
        ters = [float(etf["ter_pct"]) for etf in etfs]
        best = min(etfs, key=lambda e: (float(e["ter_pct"]), -float(e["fund_size_eur_m"])))
        assert n_etfs == len(etfs) >= 2
        assert cheapest == best["isin"]
        assert float(min_ter) == pytest.approx(min(ters))
        assert float(max_ter) == pytest.approx(max(ters))
        assert avg_ter == pytest.approx(sum(ters) / len(ters), abs=1e-4)
        assert float(spread) == pytest.approx(max(ters) - min(ters))
        assert spread_bps == round((max(ters) - min(ters)) * 100)

    # exactly one cheapest ETF per index in the ranking and the overview
    assert _scalar(
        warehouse, "SELECT COUNT(*) FROM marts.etf_cost_ranking WHERE is_cheapest_in_index"
    ) == len(by_index)
    assert _scalar(
        warehouse, "SELECT COUNT(*) FROM marts.fund_overview WHERE is_cheapest_in_index"
    ) == len(by_index)
    assert _scalar(warehouse, "SELECT MIN(ter_vs_cheapest_bps) FROM marts.etf_cost_ranking") == 0


# --- metadata, a second plan and a scheduled run, in one SQLMesh process ------------------------

AFTER_BUILD = """
import datetime as dt
import json

from sqlmesh import Context

ctx = Context(paths=".")
models = {}
for model in ctx.models.values():
    if model.kind.is_external:
        continue
    table = model.fully_qualified_table
    models[f"{table.db}.{table.name}"] = dict(
        kind=model.kind.name.value,
        owner=model.owner,
        description=model.description,
        tags=model.tags,
        columns=sorted(model.columns_to_types or {}),
        described=sorted(model.column_descriptions),
        audits=[name for name, _ in model.audits],
    )
plan = ctx.plan(no_prompts=True, auto_apply=True, skip_tests=True)
later = (dt.date.today() + dt.timedelta(days=3)).isoformat()
status = ctx.run(execution_time=later, end=later)  # three more (empty) daily intervals
environment = ctx.state_reader.get_environment("prod")
snapshots = ctx.state_reader.get_snapshots(environment.snapshots).values()
quotes = next(s for s in snapshots if s.name.endswith('"stg_daily_quotes"'))
covered_until = dt.datetime.fromtimestamp(max(e for _, e in quotes.intervals) / 1000, dt.UTC)
ctx.close()
print("RESULT" + json.dumps(dict(
    models=models,
    second_plan_has_changes=plan.has_changes,
    second_plan_requires_backfill=plan.requires_backfill,
    run_status=status.name,
    run_until=later,
    quotes_covered_until=covered_until.date().isoformat(),
)))
"""


@pytest.fixture(scope="module")
def after_build(built_project: Path) -> dict:
    result = _python(built_project, AFTER_BUILD)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("RESULT"))
    return {**json.loads(line.removeprefix("RESULT")), "output": output}


def test_models_declare_kind_and_documentation(after_build: dict) -> None:
    models = after_build["models"]
    assert {name: spec["kind"] for name, spec in models.items()} == EXPECTED_MODELS
    for name, spec in models.items():
        assert spec["owner"] and spec["description"] and "justetf" in spec["tags"], name
        assert spec["audits"], name
        assert spec["columns"] and set(spec["columns"]) == set(spec["described"]), name
    audits = {audit for spec in models.values() for audit in spec["audits"]}
    assert {"assert_positive_prices", "assert_valid_isin", "warn_stale_quotes"} <= audits
    assert "not_null_non_blocking" in audits


def test_second_plan_is_a_no_op(after_build: dict) -> None:
    assert after_build["second_plan_has_changes"] is False
    assert after_build["second_plan_requires_backfill"] is False


def test_scheduled_run_over_empty_intervals_passes_audits(
    after_build: dict, built_project: Path
) -> None:
    """Quotes stop on 2024-12-31: later daily intervals are empty and must not fail audits."""
    output = after_build["output"]
    assert after_build["run_status"] == "SUCCESS", output
    # the run really processed the intervals after the build's today, three days of them: the
    # last one it filled ends at `later` (its execution time and end, computed once in the
    # subprocess), when that day's interval is not due yet
    covered_until = dt.date.fromisoformat(after_build["quotes_covered_until"])
    assert covered_until == dt.date.fromisoformat(after_build["run_until"])
    assert "audit error" not in output and "[WARNING]" not in output, output

    connection = duckdb.connect(str(built_project / "justetf.duckdb"), read_only=True)
    try:
        last_return = _scalar(connection, "SELECT MAX(trade_date) FROM marts.daily_returns")
        assert last_return == dt.date(2024, 12, 31)
        n_quotes = _scalar(connection, "SELECT COUNT(*) FROM staging.stg_daily_quotes")
        assert n_quotes == len(_read_csv(QUOTES_CSV))
    finally:
        connection.close()
