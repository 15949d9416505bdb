MODEL (
  name marts.daily_returns,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column trade_date
  ),
  owner 'quant-research',
  description 'Daily simple and log returns per ETF, close-to-close against the previous trading day. Incremental by trading day: each interval reads a 14-day lookback window so its first day still finds the previous close.',
  tags ['justetf', 'marts', 'returns', 'incremental'],
  grain (isin, trade_date),
  audits (
    not_null(columns := (trade_date, isin, close_price, prev_close_price, daily_return, log_return)),
    unique_combination_of_columns(columns := (isin, trade_date)),
    forall(criteria := (prev_trade_date < trade_date)),
    accepted_range(column := daily_return, min_v := -0.15, max_v := 0.15, blocking := false)
  )
);

WITH windowed AS (
  SELECT
    trade_date,
    isin,
    close_price,
    LAG(close_price) OVER (PARTITION BY isin ORDER BY trade_date) AS prev_close_price,
    LAG(trade_date) OVER (PARTITION BY isin ORDER BY trade_date) AS prev_trade_date
  FROM staging.stg_daily_quotes
  WHERE
    trade_date BETWEEN @start_date - INTERVAL 14 DAY AND @end_ds
)
SELECT
  trade_date, -- Trading day of the return.
  isin, -- ISIN of the ETF share class.
  close_price, -- Closing price on trade_date.
  prev_trade_date, -- Previous trading day with a quote for this ETF.
  prev_close_price, -- Closing price on prev_trade_date.
  close_price / prev_close_price - 1 AS daily_return, -- Simple return close-to-close (0.01 = +1 %).
  LN(close_price / prev_close_price) AS log_return -- Continuously compounded return close-to-close.
FROM windowed
WHERE
  trade_date BETWEEN @start_ds AND @end_ds AND prev_close_price IS NOT NULL
