"""The reference flow's landing asset, beside the component that declares its SQLMesh models."""

import dagster as dg

from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.justetf.landing import landing_assets
from mxm_dagster.project.sqlmesh_project import DEFAULT_PROJECT_DIR, SQLMeshProject

_project = SQLMeshProject.at(str(DEFAULT_PROJECT_DIR))
_spec = _project.load_spec()

defs = dg.Definitions(assets=landing_assets(_project, _spec, SQLMeshTranslator(_spec)))
