-- Custom NON-blocking audit: warns when an ETF's latest quote lags the freshest quote of the
-- universe by more than @max_lag_days calendar days (a fund that stopped being delivered).
-- Non-blocking by definition: a failure is reported as a warning and does not stop the run.
AUDIT (
  name warn_stale_quotes,
  dialect duckdb,
  blocking false,
  defaults (
    max_lag_days = 7
  )
);

SELECT
  *
FROM @this_model
WHERE
  DATE_DIFF(
    'day',
    trade_date,
    (
      SELECT
        MAX(trade_date)
      FROM @this_model
    )
  ) > @max_lag_days
