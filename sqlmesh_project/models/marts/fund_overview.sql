MODEL (
  name marts.fund_overview,
  kind FULL,
  owner 'fund-analytics',
  description 'One row per ETF combining profile, latest quote, trailing performance, risk and cost ranking: the justETF-style fund overview table.',
  tags ['justetf', 'marts', 'overview'],
  grain isin,
  audits (
    not_null(columns := (isin, etf_name, index_name, ter_pct, last_close, last_trade_date)),
    unique_values(columns := (isin)),
    not_null_non_blocking(columns := (return_1y, volatility_ann, max_drawdown))
  )
);

SELECT
  m.isin, -- ISIN of the ETF share class.
  m.etf_name, -- Name of the ETF.
  m.provider, -- ETF issuer brand.
  m.index_name, -- Benchmark index the ETF tracks.
  m.asset_class, -- Asset class of the index.
  m.replication, -- Replication method.
  m.distribution_policy, -- accumulating or distributing.
  m.fund_currency, -- Base currency of the fund.
  m.fund_size_eur_m, -- Assets under management, EUR millions.
  m.ter_pct, -- TER in percent p.a.
  r.ter_rank_in_index, -- Rank by TER within the index (1 = cheapest).
  r.is_cheapest_in_index, -- True for the cheapest ETF on the index.
  q.trade_date AS last_trade_date, -- Day of the latest quote.
  q.close_price AS last_close, -- Latest closing price.
  q.currency AS quote_currency, -- Trading currency of the quote.
  p.return_1m, -- Price return over the last month.
  p.return_3m, -- Price return over the last 3 months.
  p.return_6m, -- Price return over the last 6 months.
  p.return_1y, -- Price return over the last year.
  p.return_ytd, -- Price return year to date.
  k.volatility_ann, -- Annualised volatility over the full history.
  k.volatility_1y_ann, -- Annualised volatility over the trailing year.
  k.max_drawdown, -- Deepest peak-to-trough loss.
  k.current_drawdown, -- Drawdown on the latest trading day.
  k.return_to_risk -- Annualised return per unit of volatility.
FROM staging.stg_etf_master AS m
LEFT JOIN staging.stg_latest_quotes AS q
  ON m.isin = q.isin
LEFT JOIN marts.trailing_performance AS p
  ON m.isin = p.isin
LEFT JOIN marts.risk_metrics AS k
  ON m.isin = k.isin
LEFT JOIN marts.etf_cost_ranking AS r
  ON m.isin = r.isin
