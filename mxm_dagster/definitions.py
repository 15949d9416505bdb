"""The code location Dagster loads (`dagster dev -m mxm_dagster.definitions`): the project the
MXM_ variables name."""

from mxm_dagster.code_location import build_definitions

defs = build_definitions()
