MODEL (
  name marts.risk_metrics,
  kind FULL,
  owner 'quant-research',
  description 'Risk profile per ETF over the full history and the trailing year: annualised volatility (252 trading days), maximum drawdown with peak/trough dates, current drawdown and a return/risk ratio.',
  tags ['justetf', 'marts', 'risk'],
  grain isin,
  audits (
    not_null(columns := (isin, as_of_date, volatility_ann, max_drawdown)),
    unique_values(columns := (isin)),
    accepted_range(column := volatility_ann, min_v := 0, max_v := 1, inclusive := false),
    accepted_range(column := max_drawdown, min_v := -1, max_v := 0),
    forall(criteria := (max_drawdown <= current_drawdown, peak_date <= trough_date))
  )
);

WITH returns AS (
  SELECT
    isin,
    trade_date,
    daily_return,
    log_return,
    MAX(trade_date) OVER (PARTITION BY isin) AS as_of_date
  FROM marts.daily_returns
), return_stats AS (
  SELECT
    isin,
    MAX(as_of_date) AS as_of_date,
    COUNT(*) AS n_returns,
    STDDEV_SAMP(log_return) * SQRT(252) AS volatility_ann,
    STDDEV_SAMP(log_return) FILTER (WHERE trade_date > as_of_date - INTERVAL 1 YEAR) * SQRT(252) AS volatility_1y_ann,
    EXP(SUM(log_return)) - 1 AS total_return,
    EXP(AVG(log_return) * 252) - 1 AS return_ann
  FROM returns
  GROUP BY
    isin
), drawdown_stats AS (
  SELECT
    isin,
    MIN(drawdown) AS max_drawdown,
    (ARRAY_AGG(drawdown ORDER BY trade_date DESC))[1] AS current_drawdown
  FROM marts.drawdowns
  GROUP BY
    isin
), troughs AS (
  /* the first day on which the deepest drawdown was reached */
  SELECT
    d.isin,
    MIN(d.trade_date) AS trough_date
  FROM marts.drawdowns AS d
  JOIN drawdown_stats AS s
    ON d.isin = s.isin AND d.drawdown = s.max_drawdown
  GROUP BY
    d.isin
), peaks AS (
  /* the last new high before that trough */
  SELECT
    d.isin,
    MAX(d.trade_date) AS peak_date
  FROM marts.drawdowns AS d
  JOIN troughs AS t
    ON d.isin = t.isin AND d.trade_date <= t.trough_date AND d.drawdown = 0
  GROUP BY
    d.isin
)
SELECT
  s.isin, -- ISIN of the ETF share class.
  s.as_of_date, -- Last trading day with a return.
  s.n_returns, -- Number of daily returns in the history.
  s.volatility_ann, -- Annualised volatility of daily log returns over the full history.
  s.volatility_1y_ann, -- Annualised volatility over the trailing year up to as_of_date.
  s.total_return, -- Cumulative return over the full history.
  s.return_ann, -- Annualised return (mean daily log return x 252).
  s.return_ann / NULLIF(s.volatility_ann, 0) AS return_to_risk, -- Annualised return per unit of annualised volatility.
  d.max_drawdown, -- Deepest peak-to-trough loss over the history (<= 0).
  p.peak_date, -- Day of the running peak before the deepest trough.
  t.trough_date, -- First day on which the deepest trough was reached.
  d.current_drawdown -- Drawdown on the latest trading day (<= 0).
FROM return_stats AS s
JOIN drawdown_stats AS d
  ON s.isin = d.isin
JOIN troughs AS t
  ON s.isin = t.isin
LEFT JOIN peaks AS p
  ON s.isin = p.isin
