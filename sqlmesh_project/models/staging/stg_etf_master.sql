MODEL (
  name staging.stg_etf_master,
  kind VIEW,
  owner 'data-platform',
  description 'Cleaned ETF master data: typed, trimmed, TER also as a decimal fraction, convenience flags.',
  tags ['justetf', 'staging', 'master-data'],
  grain isin,
  audits (
    not_null(columns := (isin, index_name, ter)),
    unique_values(columns := (isin))
  )
);

SELECT
  UPPER(TRIM(isin))::VARCHAR AS isin, -- ISIN of the ETF share class (primary key).
  TRIM(etf_name)::VARCHAR AS etf_name, -- Official name of the ETF share class.
  TRIM(provider)::VARCHAR AS provider, -- ETF issuer brand.
  TRIM(index_name)::VARCHAR AS index_name, -- Benchmark index the ETF tracks.
  asset_class::VARCHAR AS asset_class, -- Asset class of the index (Equity, Bonds).
  ter_pct::DECIMAL(5, 2) AS ter_pct, -- Total expense ratio in percent per year.
  (ter_pct / 100.0)::DOUBLE AS ter, -- Total expense ratio as a fraction per year (0.0020 = 0.20 %).
  replication::VARCHAR AS replication, -- physical_full, physical_sampling or synthetic.
  replication LIKE 'physical%' AS is_physical, -- True when the ETF holds the index securities.
  distribution_policy::VARCHAR AS distribution_policy, -- accumulating or distributing.
  distribution_policy = 'accumulating' AS is_accumulating, -- True when income is reinvested.
  fund_currency::VARCHAR AS fund_currency, -- Base currency of the fund (ISO 4217).
  domicile::VARCHAR AS domicile, -- Country where the fund is domiciled.
  fund_size_eur_m::DECIMAL(12, 1) AS fund_size_eur_m, -- Assets under management in EUR millions.
  inception_date::DATE AS inception_date -- Launch date of the share class.
FROM raw.etf_master
