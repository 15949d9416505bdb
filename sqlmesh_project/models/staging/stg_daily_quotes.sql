MODEL (
  name staging.stg_daily_quotes,
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column trade_date
  ),
  owner 'data-platform',
  description 'Daily closing quotes per ETF, typed and de-duplicated from landing.etf_daily_quotes. Incremental by trading day; intervals after the last delivered quote are simply empty.',
  tags ['justetf', 'staging', 'quotes', 'incremental'],
  grain (isin, trade_date),
  audits (
    not_null(columns := (trade_date, isin, close_price, currency)),
    unique_combination_of_columns(columns := (isin, trade_date)),
    assert_positive_prices(column := close_price),
    accepted_values(column := currency, is_in := ('EUR', 'USD', 'GBP', 'CHF')),
    accepted_range(column := volume, min_v := 0)
  )
);

SELECT
  trade_date::DATE AS trade_date, -- Trading day of the quote.
  UPPER(TRIM(isin))::VARCHAR AS isin, -- ISIN of the ETF share class.
  close_price::DOUBLE AS close_price, -- Closing price in the trading currency.
  UPPER(TRIM(currency))::VARCHAR AS currency, -- Trading currency of the listing (ISO 4217).
  volume::BIGINT AS volume -- Number of shares traded on the day.
FROM landing.etf_daily_quotes
WHERE
  trade_date BETWEEN @start_ds AND @end_ds
QUALIFY
  ROW_NUMBER() OVER (PARTITION BY UPPER(TRIM(isin)), trade_date ORDER BY volume DESC NULLS LAST) = 1
