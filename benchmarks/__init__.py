"""Benchmarks for mxm_dagster: synthetic SQLMesh projects and side-by-side timings.

Not timed tests: `python -m benchmarks.run` measures, `docs/benchmarks.md` records the figures.
"""
