MODEL (
  name marts.trailing_performance,
  kind FULL,
  owner 'quant-research',
  description 'Trailing price performance per ETF as of its latest quote: 1 month, 3 months, 6 months, 1 year, year to date and since the first quote. Each horizon compares the latest close with the last close on or before the horizon start; NULL when the history is too short.',
  tags ['justetf', 'marts', 'returns', 'performance'],
  grain isin,
  audits (
    not_null(columns := (isin, as_of_date, last_close, return_1m, return_ytd, return_since_start)),
    unique_values(columns := (isin)),
    accepted_range(column := return_1y, min_v := -0.9, max_v := 3, blocking := false)
  )
);

WITH quotes AS (
  SELECT
    isin,
    trade_date,
    close_price,
    MAX(trade_date) OVER (PARTITION BY isin) AS as_of_date
  FROM staging.stg_daily_quotes
), anchors AS (
  SELECT
    isin,
    MAX(as_of_date) AS as_of_date,
    (ARRAY_AGG(close_price ORDER BY trade_date DESC))[1] AS last_close,
    MIN(trade_date) AS first_trade_date,
    (ARRAY_AGG(close_price ORDER BY trade_date))[1] AS first_close,
    (ARRAY_AGG(close_price ORDER BY trade_date DESC) FILTER (WHERE trade_date <= as_of_date - INTERVAL 1 MONTH))[1] AS close_1m,
    (ARRAY_AGG(close_price ORDER BY trade_date DESC) FILTER (WHERE trade_date <= as_of_date - INTERVAL 3 MONTH))[1] AS close_3m,
    (ARRAY_AGG(close_price ORDER BY trade_date DESC) FILTER (WHERE trade_date <= as_of_date - INTERVAL 6 MONTH))[1] AS close_6m,
    (ARRAY_AGG(close_price ORDER BY trade_date DESC) FILTER (WHERE trade_date <= as_of_date - INTERVAL 1 YEAR))[1] AS close_1y,
    (ARRAY_AGG(close_price ORDER BY trade_date DESC) FILTER (WHERE trade_date < DATE_TRUNC('year', as_of_date)))[1] AS close_prev_year_end
  FROM quotes
  GROUP BY
    isin
)
SELECT
  isin, -- ISIN of the ETF share class.
  as_of_date, -- Latest trading day with a quote; all horizons end here.
  last_close, -- Closing price on as_of_date.
  last_close / close_1m - 1 AS return_1m, -- Price return over the last month.
  last_close / close_3m - 1 AS return_3m, -- Price return over the last 3 months.
  last_close / close_6m - 1 AS return_6m, -- Price return over the last 6 months.
  last_close / close_1y - 1 AS return_1y, -- Price return over the last year.
  last_close / COALESCE(close_prev_year_end, first_close) - 1 AS return_ytd, -- Price return since the last close of the previous year (or the first quote in the year).
  first_trade_date, -- First trading day with a quote.
  last_close / first_close - 1 AS return_since_start -- Price return since first_trade_date.
FROM anchors
