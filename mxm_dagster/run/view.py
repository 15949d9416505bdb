"""What a run means for one SQLMesh project, and what one step of it reports on: computed once.

Everything a step needs to know about the run (its asset graph, its assets and checks, the
project's models and their keys, the partition window) depends on the run alone, so it is built
once per run and project in each process (`RunView`, cached by the resource under the run's id)
and every step reads it: a step's own work is then proportional to its model, not to the number
of models. What depends on the step (its key, its selected checks, its partitions) is one
immutable `StepView`, built in one place from the context. The arithmetic stays in
`run.selection`'s pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

import dagster as dg

from mxm_dagster.run import selection

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph


@dataclass(frozen=True)
class RunView:
    """The run as one project's steps see it; the same for every step of the run."""

    run_id: str
    project: str | None  # the project folder, as the step's tag names it
    graph: AssetGraph  # the whole graph of the definitions being run (`selection.asset_graph`)
    run_keys: frozenset[dg.AssetKey]
    check_keys: frozenset[dg.AssetCheckKey]
    keys_by_model: Mapping[str, dg.AssetKey]  # the project's models (not external sources)
    models_by_key: Mapping[dg.AssetKey, str]
    steps_by_model: Mapping[str, str]  # the project's models that have a step in this job
    sqlmesh_keys: frozenset[dg.AssetKey]  # every project's models: none of them is foreign
    models: frozenset[str]  # the project's models the run selects
    checks_only: frozenset[str]  # models whose checks alone the run selects
    window: tuple[datetime, datetime] | None  # [start, end) of a partitioned run
    tags: Mapping[str, str]

    @classmethod
    def of(cls, context: dg.AssetExecutionContext) -> RunView:
        """Built from a step's context; the step's project decides whose models are counted."""
        graph = selection.asset_graph(context)
        project = selection.step_project(context)
        layer = context.job_def.asset_layer
        run_keys = frozenset(selection.asset_keys_for_run(context))
        check_keys = frozenset(selection.check_keys_for_run(context))
        keys_by_model = MappingProxyType(selection.asset_keys_by_model_of(graph, project))
        tags = MappingProxyType(dict(context.run.tags))  # read-only: every step shares them
        return cls(
            run_id=context.run_id,
            project=project,
            graph=graph,
            run_keys=run_keys,
            check_keys=check_keys,
            keys_by_model=keys_by_model,
            models_by_key=MappingProxyType({key: model for model, key in keys_by_model.items()}),
            steps_by_model=MappingProxyType(
                {
                    model: step
                    for model, key in keys_by_model.items()
                    if (step := selection.step_key(layer, key)) is not None
                }
            ),
            sqlmesh_keys=frozenset(selection.sqlmesh_model_keys_of(graph)),
            models=frozenset(m for m, key in keys_by_model.items() if key in run_keys),
            checks_only=frozenset(
                selection.checks_only_models_of(graph, set(run_keys), set(check_keys))
            ),
            window=selection.time_window_of(graph, set(run_keys), tags),
            tags=tags,
        )

    def partitions_def(self, key: dg.AssetKey) -> dg.TimeWindowPartitionsDefinition | None:
        """The partitions of asset `key` as the definitions being run have them."""
        return selection.partitions_def_of(self.graph, key)

    def deferred(self, context: dg.AssetExecutionContext, models: set[str]) -> set[str]:
        """Models that must wait for a non-SQLMesh asset of this run that has not materialized
        yet: a Python asset that loads an external table may run after the first SQLMesh step
        of the run, and models below it are left for a later execution in the step that needs
        them. The run's materializations so far are read now, from the instance."""
        foreign = self.run_keys - self.sqlmesh_keys  # any project's models are not pending
        if not foreign:
            return set()
        pending = foreign - selection.materialized_in_run(context)
        if not pending:
            return set()
        return selection.deferred_models_of(self.graph, models, self.keys_by_model, pending)

    def downstream(self, key: dg.AssetKey) -> list[dg.AssetKey]:
        """The run's assets downstream of `key` through assets of the run: the steps Dagster
        skips when the step of `key` yields no output (what is below `key`, not the graph)."""
        return selection.downstream_of(self.graph, key, set(self.run_keys))


@dataclass(frozen=True)
class StepView:
    """One step: its asset, what of it the run selects, and the run it belongs to."""

    run: RunView
    asset_key: dg.AssetKey
    asset_selected: bool  # false when the run selects the step's checks alone
    selected_checks: frozenset[dg.AssetCheckKey]
    partitions_def: dg.TimeWindowPartitionsDefinition | None
    partition_keys: tuple[str, ...]  # the range the step's output would record

    @classmethod
    def of(cls, context: dg.AssetExecutionContext, run: RunView) -> StepView:
        """The step's view; Dagster reads a step's range with its own partitions definition,
        a single partition's tag first, else the range's tags (`selection.partition_keys_of`)."""
        checks = frozenset(context.selected_asset_check_keys)
        selected = bool(context.selected_asset_keys)
        # a step of checks alone has no asset in its (subset) definition to ask for a key
        key = context.asset_key if selected or not checks else next(iter(checks)).asset_key
        partitions_def = run.partitions_def(key)
        keys = selection.partition_keys_of(partitions_def, run.tags) if partitions_def else []
        return cls(
            run=run,
            asset_key=key,
            asset_selected=selected,
            selected_checks=checks,
            partitions_def=partitions_def,
            partition_keys=tuple(keys),
        )


class RunViews:
    """The run views of one resource instance, by run id and project: Dagster initialises a
    resource once per run per process, and the key keeps two runs (or projects) apart anyway."""

    def __init__(self) -> None:
        self._views: dict[tuple[str, str | None], RunView] = {}

    def of(self, context: dg.AssetExecutionContext) -> RunView:
        key = (context.run_id, selection.step_project(context))
        view = self._views.get(key)
        if view is None:
            if any(run_id != context.run_id for run_id, _ in self._views):
                self._views.clear()  # a resource reused for another run keeps nothing of this
            view = self._views[key] = RunView.of(context)
        return view
