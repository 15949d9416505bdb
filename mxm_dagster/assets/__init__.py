"""Build time, in the code server: one asset per model, its partitions, checks and sensor."""
