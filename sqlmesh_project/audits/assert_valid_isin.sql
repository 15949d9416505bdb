-- Custom audit: @column looks like an ISIN: 2-letter country code, 9 alphanumerics, 1 check digit.
-- Usage in a model: audits (assert_valid_isin(column := isin))
AUDIT (
  name assert_valid_isin,
  dialect duckdb,
  defaults (
    column = isin
  )
);

SELECT
  *
FROM @this_model
WHERE
  @column IS NULL OR NOT REGEXP_MATCHES(@column, '^[A-Z]{2}[A-Z0-9]{9}[0-9]$')
