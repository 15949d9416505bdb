MODEL (
  name staging.stg_latest_quotes,
  kind INCREMENTAL_BY_UNIQUE_KEY (
    unique_key isin
  ),
  owner 'data-platform',
  description 'Latest known quote per ETF (a fund snapshot keyed by ISIN). Each processed interval upserts the newest quote on or after the interval start, so re-processing an old interval never rolls a fund back to an older price.',
  tags ['justetf', 'staging', 'quotes', 'snapshot'],
  grain isin,
  audits (
    not_null(columns := (isin, trade_date, close_price)),
    unique_values(columns := (isin)),
    assert_positive_prices(column := close_price),
    warn_stale_quotes(max_lag_days := 7)
  )
);

SELECT
  isin, -- ISIN of the ETF share class (unique key).
  trade_date, -- Trading day of the latest quote.
  close_price, -- Latest closing price in the trading currency.
  currency, -- Trading currency of the listing.
  volume -- Shares traded on trade_date.
FROM staging.stg_daily_quotes
WHERE
  trade_date >= @start_ds
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY isin ORDER BY trade_date DESC) = 1
