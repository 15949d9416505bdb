"""The planner's questions (`planner.StateReads`) answered from an open SQLMesh Context.

Questions about the project load its model files first, once: a run is decided from SQLMesh's
state alone and never reads them (docs/adr/0007).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlmesh import Context

from mxm_dagster.child import sqlmesh_api


class ContextReads:
    """`StateReads` of `context` for `environment`; `load_models` loads the project into it."""

    def __init__(self, context: Context, environment: str, load_models: Callable[[], None]):
        self.context = context
        self.environment = environment
        self._load_models = load_models
        self._loaded = False

    def load_models(self) -> None:
        """Load the project's model files into the Context, the first time only."""
        if not self._loaded:
            self._load_models()
            self._loaded = True

    def finalized_plan_id(self) -> str | None:
        return sqlmesh_api.finalized_plan_id(self.context, self.environment)

    def deployed(self) -> set[str]:
        self.load_models()  # a plan follows: the project is needed from here on
        return sqlmesh_api.environment_model_names(self.context, self.environment)

    def upstream(self, names: Collection[str]) -> set[str]:
        self.load_models()
        return sqlmesh_api.upstream(self.context, names)

    def has_metadata_only_changes(self) -> bool:
        self.load_models()
        return sqlmesh_api.has_metadata_only_changes(self.context, self.environment)

    def downstream(self, names: frozenset[str]) -> set[str]:
        self.load_models()
        return sqlmesh_api.downstream(self.context, self.environment, names)
