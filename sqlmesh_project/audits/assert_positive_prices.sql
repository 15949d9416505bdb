-- Custom audit: every price in @column must be strictly positive (and present).
-- Usage in a model: audits (assert_positive_prices(column := close_price))
-- Blocking (the SQLMesh default): a failure stops the model's downstream evaluation.
AUDIT (
  name assert_positive_prices,
  dialect duckdb,
  defaults (
    column = close_price
  )
);

SELECT
  *
FROM @this_model
WHERE
  @column IS NULL OR @column <= 0
