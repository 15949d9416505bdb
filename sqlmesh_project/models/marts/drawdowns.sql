MODEL (
  name marts.drawdowns,
  kind VIEW,
  owner 'quant-research',
  description 'Daily drawdown series per ETF: closing price against its running peak since the first quote.',
  tags ['justetf', 'marts', 'risk'],
  grain (isin, trade_date),
  audits (
    not_null(columns := (trade_date, isin, running_peak, drawdown)),
    accepted_range(column := drawdown, min_v := -1, max_v := 0)
  )
);

WITH peaks AS (
  SELECT
    trade_date,
    isin,
    close_price,
    MAX(close_price) OVER (
      PARTITION BY isin
      ORDER BY trade_date
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS running_peak
  FROM staging.stg_daily_quotes
)
SELECT
  trade_date, -- Trading day.
  isin, -- ISIN of the ETF share class.
  close_price, -- Closing price on trade_date.
  running_peak, -- Highest close up to and including trade_date.
  close_price / running_peak - 1 AS drawdown -- Loss from the running peak (0 at a new high, -0.10 = 10 % below it).
FROM peaks
