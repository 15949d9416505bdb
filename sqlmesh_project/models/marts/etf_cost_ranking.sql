MODEL (
  name marts.etf_cost_ranking,
  kind VIEW,
  owner 'fund-analytics',
  description 'Each ETF ranked by TER within its index, with the extra cost over the cheapest ETF on the same index and the yearly fee on a 10,000 EUR holding.',
  tags ['justetf', 'marts', 'costs'],
  grain isin,
  audits (
    not_null(columns := (isin, index_name, ter_rank_in_index, ter_vs_cheapest_bps)),
    unique_values(columns := (isin)),
    accepted_range(column := ter_vs_cheapest_bps, min_v := 0)
  )
);

SELECT
  m.isin, -- ISIN of the ETF share class.
  m.etf_name, -- Name of the ETF.
  m.provider, -- ETF issuer brand.
  m.index_name, -- Benchmark index the ETF tracks.
  m.ter_pct, -- TER in percent p.a.
  RANK() OVER (PARTITION BY m.index_name ORDER BY m.ter_pct) AS ter_rank_in_index, -- 1 = cheapest on the index (ties share a rank).
  c.n_etfs AS n_etfs_in_index, -- Number of ETFs tracking the same index.
  m.isin = c.cheapest_isin AS is_cheapest_in_index, -- True for the cheapest ETF of the index (ter_comparison tie-break).
  ((m.ter_pct - c.min_ter_pct) * 100)::INT AS ter_vs_cheapest_bps, -- Extra TER over the cheapest ETF, in basis points.
  (m.ter_pct * 100)::DOUBLE AS annual_fee_eur_per_10k -- Yearly running cost of holding 10,000 EUR, in EUR.
FROM staging.stg_etf_master AS m
JOIN marts.ter_comparison AS c
  ON m.index_name = c.index_name
