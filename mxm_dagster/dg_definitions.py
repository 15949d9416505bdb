"""The code location `dg` loads (`[tool.dg.project]` in pyproject.toml): the defs folder.

`mxm_dagster.definitions` stays the MXM_-configured code location of workspace.yaml and
`make run`; this one is what the components in mxm_dagster/defs declare.
"""

from pathlib import Path

import dagster as dg

from mxm_dagster.code_location import executor_from_env

defs = dg.Definitions.merge(
    dg.components.load_from_defs_folder(project_root=Path(__file__).resolve().parent.parent),
    dg.Definitions(executor=executor_from_env()),
)
