"""mxm_dagster: one Dagster asset per SQLMesh model, SQLMesh run once per Dagster run."""
