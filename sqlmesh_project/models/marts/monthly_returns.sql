MODEL (
  name marts.monthly_returns,
  kind FULL,
  owner 'quant-research',
  description 'Month-end to month-end returns per ETF, using the last trading day of each month from raw.trading_calendar.',
  tags ['justetf', 'marts', 'returns'],
  grain (isin, month_end_date),
  audits (
    not_null(columns := (isin, month_end_date, monthly_return)),
    unique_combination_of_columns(columns := (isin, month_end_date)),
    accepted_range(column := monthly_return, min_v := -0.5, max_v := 0.5)
  )
);

WITH month_end_quotes AS (
  SELECT
    q.isin,
    q.trade_date AS month_end_date,
    q.close_price,
    LAG(q.close_price) OVER (PARTITION BY q.isin ORDER BY q.trade_date) AS prev_close_price,
    LAG(q.trade_date) OVER (PARTITION BY q.isin ORDER BY q.trade_date) AS prev_month_end_date
  FROM staging.stg_daily_quotes AS q
  JOIN raw.trading_calendar AS c
    ON q.trade_date = c.trade_date AND c.is_month_end
)
SELECT
  isin, -- ISIN of the ETF share class.
  month_end_date, -- Last trading day of the month.
  DATE_TRUNC('month', month_end_date)::DATE AS month_start, -- First calendar day of the month.
  close_price, -- Closing price on month_end_date.
  prev_month_end_date, -- Last trading day of the previous month.
  close_price / prev_close_price - 1 AS monthly_return -- Price return over the month (0.02 = +2 %).
FROM month_end_quotes
WHERE
  prev_close_price IS NOT NULL
