MODEL (
  name marts.ter_comparison,
  kind FULL,
  owner 'fund-analytics',
  description 'Cost comparison per tracked index: how many ETFs track it, the cheapest one (lowest TER, ties broken by larger fund size, then ISIN), average / asset-weighted / max TER and the TER spread between the most and the least expensive ETF.',
  tags ['justetf', 'marts', 'costs'],
  grain index_name,
  audits (
    not_null(columns := (index_name, n_etfs, cheapest_isin, min_ter_pct, avg_ter_pct, max_ter_pct)),
    unique_values(columns := (index_name)),
    forall(criteria := (
      min_ter_pct <= avg_ter_pct,
      avg_ter_pct <= max_ter_pct,
      ter_spread_pct >= 0,
      n_etfs >= 1
    )),
    accepted_range(column := n_etfs, min_v := 2, blocking := false)
  )
);

WITH ranked AS (
  SELECT
    index_name,
    asset_class,
    isin,
    etf_name,
    provider,
    ter_pct,
    fund_size_eur_m,
    ROW_NUMBER() OVER (
      PARTITION BY index_name
      ORDER BY ter_pct ASC, fund_size_eur_m DESC, isin ASC
    ) AS cheapest_rank,
    ROW_NUMBER() OVER (
      PARTITION BY index_name
      ORDER BY ter_pct DESC, fund_size_eur_m ASC, isin ASC
    ) AS priciest_rank
  FROM staging.stg_etf_master
)
SELECT
  index_name, -- Benchmark index (one row per index).
  MIN(asset_class) AS asset_class, -- Asset class of the index (one per index).
  COUNT(*) AS n_etfs, -- Number of ETFs tracking the index.
  MAX(isin) FILTER (WHERE cheapest_rank = 1) AS cheapest_isin, -- ISIN of the cheapest ETF.
  MAX(etf_name) FILTER (WHERE cheapest_rank = 1) AS cheapest_etf_name, -- Name of the cheapest ETF.
  MAX(provider) FILTER (WHERE cheapest_rank = 1) AS cheapest_provider, -- Provider of the cheapest ETF.
  MIN(ter_pct) AS min_ter_pct, -- Lowest TER in percent p.a.
  ROUND(AVG(ter_pct)::DOUBLE, 4) AS avg_ter_pct, -- Average TER in percent p.a. (unweighted).
  ROUND(SUM(ter_pct * fund_size_eur_m)::DOUBLE / SUM(fund_size_eur_m)::DOUBLE, 4) AS asset_weighted_ter_pct, -- TER weighted by fund size, in percent p.a.
  MAX(ter_pct) AS max_ter_pct, -- Highest TER in percent p.a.
  MAX(isin) FILTER (WHERE priciest_rank = 1) AS most_expensive_isin, -- ISIN of the most expensive ETF.
  MAX(ter_pct) - MIN(ter_pct) AS ter_spread_pct, -- Highest minus lowest TER, in percentage points.
  ((MAX(ter_pct) - MIN(ter_pct)) * 100)::INT AS ter_spread_bps, -- Highest minus lowest TER, in basis points.
  SUM(fund_size_eur_m) AS total_fund_size_eur_m -- Assets of all ETFs on the index, EUR millions.
FROM ranked
GROUP BY
  index_name
