"""mxm_dagster: one Dagster asset per SQLMesh model, SQLMesh run once per Dagster run.

The names in `__all__` are the public API; every other module is internal. `dg` finds the
component here (the `dagster_dg_cli.registry_modules` entry point names this package). The names
are imported on first access (PEP 562), so importing a submodule, e.g. `mxm_dagster.child` in the
SQLMesh child, never imports Dagster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mxm_dagster.assets.builder import sqlmesh_definitions
    from mxm_dagster.assets.component import SQLMeshProjectComponent
    from mxm_dagster.assets.translator import SQLMeshTranslator
    from mxm_dagster.common.errors import ProjectLoadError
    from mxm_dagster.project.sqlmesh_project import SQLMeshProject
    from mxm_dagster.records.specs import LoadedModels, ModelSpec
    from mxm_dagster.run.resource import SQLMeshResultsResource

_MODULE_OF = {
    "sqlmesh_definitions": "mxm_dagster.assets.builder",
    "SQLMeshProjectComponent": "mxm_dagster.assets.component",
    "ModelSpec": "mxm_dagster.records.specs",
    "ProjectLoadError": "mxm_dagster.common.errors",
    "LoadedModels": "mxm_dagster.records.specs",
    "SQLMeshProject": "mxm_dagster.project.sqlmesh_project",
    "SQLMeshResultsResource": "mxm_dagster.run.resource",
    "SQLMeshTranslator": "mxm_dagster.assets.translator",
}

# Old names, still importable with a DeprecationWarning; never in __all__ (README: Changelog).
_RENAMED = {"SQLMeshResource": "SQLMeshResultsResource", "ProjectSpec": "LoadedModels"}

__all__ = [
    "ModelSpec",
    "ProjectLoadError",
    "LoadedModels",
    "SQLMeshProject",
    "SQLMeshProjectComponent",
    "SQLMeshResultsResource",
    "SQLMeshTranslator",
    "sqlmesh_definitions",
]


def __getattr__(name: str) -> Any:
    if name in _RENAMED:  # not cached in globals(): every access warns
        from mxm_dagster.common.deprecation import warn_renamed

        warn_renamed(__name__, name, _RENAMED[name], stacklevel=2)
        return __getattr__(_RENAMED[name])
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'mxm_dagster' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
