MODEL (
  name raw.etf_master,
  kind SEED (
    path '../../seeds/etf_master.csv'
  ),
  owner 'data-platform',
  description 'ETF master data (justETF-style fund profile): one row per ETF share class, loaded from the shipped seed CSV.',
  tags ['justetf', 'raw', 'master-data', 'seed'],
  grain isin,
  columns (
    isin VARCHAR,
    etf_name VARCHAR,
    provider VARCHAR,
    index_name VARCHAR,
    asset_class VARCHAR,
    ter_pct DECIMAL(5, 2),
    replication VARCHAR,
    distribution_policy VARCHAR,
    fund_currency VARCHAR,
    domicile VARCHAR,
    fund_size_eur_m DECIMAL(12, 1),
    -- Kept as text in the raw layer (cast to DATE in staging.stg_etf_master): a DATE seed column
    -- makes SQLMesh 0.236 parse it with a deprecated pandas option and emit warnings on every load.
    inception_date VARCHAR
  ),
  column_descriptions (
    isin = 'ISIN of the ETF share class (primary key).',
    etf_name = 'Official name of the ETF share class.',
    provider = 'ETF issuer brand (iShares, Xtrackers, Vanguard, Amundi, SPDR, ...).',
    index_name = 'Benchmark index the ETF tracks.',
    asset_class = 'Asset class of the index (Equity, Bonds).',
    ter_pct = 'Total expense ratio in percent per year (0.20 = 0.20 % p.a.).',
    replication = 'Replication method: physical_full, physical_sampling or synthetic (swap).',
    distribution_policy = 'accumulating (reinvests income) or distributing (pays it out).',
    fund_currency = 'Base currency of the fund (ISO 4217).',
    domicile = 'Country where the fund is domiciled.',
    fund_size_eur_m = 'Fund assets under management in EUR millions.',
    inception_date = 'Launch date of the share class (ISO yyyy-mm-dd text).'
  ),
  audits (
    not_null(columns := (isin, etf_name, provider, index_name, ter_pct, replication, distribution_policy)),
    unique_values(columns := (isin)),
    assert_valid_isin(column := isin),
    accepted_values(column := replication, is_in := ('physical_full', 'physical_sampling', 'synthetic')),
    accepted_values(column := distribution_policy, is_in := ('accumulating', 'distributing')),
    accepted_range(column := ter_pct, min_v := 0, max_v := 1.5),
    accepted_range(column := fund_size_eur_m, min_v := 0, inclusive := false)
  )
)
