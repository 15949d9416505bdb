"""SQLMesh state: plans and runs, due intervals, promoted tables, and plan errors."""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlmesh import Context
from sqlmesh.core.config.categorizer import CategorizerConfig
from sqlmesh.core.constants import PROD
from sqlmesh.core.snapshot import DeployabilityIndex, missing_intervals
from sqlmesh.utils.date import make_exclusive, now_timestamp, to_timestamp

from mxm_dagster.records.results import TableInfo


def environment_model_names(context: Context, environment: str) -> set[str]:
    """Models promoted in the environment (empty when it does not exist yet)."""
    env = context.state_reader.get_environment(environment)
    return {s.name for s in env.snapshots} if env else set()


@contextmanager
def recursion_headroom(names: int) -> Iterator[None]:
    """SQLMesh joins selected model names into one `a | b | ...` expression and walks it
    recursively: a thousand names need more than Python's default recursion limit."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, 2000 + 10 * names))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def apply_plan(
    context: Context,
    environment: str,
    select_models: Collection[str] | None,
    restate_models: Collection[str] = (),
    execution_time: Any = None,
    start: Any = None,
    end: Any = None,
    allow_destructive_models: Collection[str] = (),
    run: bool = True,
    backfill_models: Collection[str] | None = None,
) -> None:
    """Plan and apply without prompts; raises SQLMesh's error when application fails.

    Changes are categorised automatically (every kind of model, Python included), so a model edit
    never stops at a prompt. `select_models=None` plans every model. `run` makes the plan also
    fill every interval due by cron as of `execution_time`, as `sqlmesh plan --run` does: without
    it SQLMesh caps the plan at the environment's latest interval end (docs/adr/0007).
    `backfill_models=None` leaves SQLMesh's own choice: the selection, or in a development
    environment without one the models changed there (and what they read).
    """
    arguments = plan_arguments(
        environment,
        select_models,
        restate_models,
        execution_time,
        start,
        end,
        allow_destructive_models,
        run,
        backfill_models,
    )
    names = len(select_models or ()) + len(restate_models) + len(backfill_models or ())
    with recursion_headroom(names):
        context.plan(**arguments, auto_apply=True, no_prompts=True, no_diff=True)


def plan_arguments(
    environment: str,
    select_models: Collection[str] | None,
    restate_models: Collection[str] = (),
    execution_time: Any = None,
    start: Any = None,
    end: Any = None,
    allow_destructive_models: Collection[str] = (),
    run: bool = True,
    backfill_models: Collection[str] | None = None,
) -> dict[str, Any]:
    """The arguments of every plan the code location makes, for `Context.plan` and
    `Context.plan_builder` alike: a preview builds the very plan a run would apply."""
    return {
        "environment": environment,
        "select_models": list(select_models) if select_models is not None else None,
        "backfill_models": list(backfill_models) if backfill_models is not None else None,
        "restate_models": list(restate_models) or None,
        "execution_time": execution_time,
        "start": start,
        "end": end,
        "run": run,
        "allow_destructive_models": list(allow_destructive_models) or None,
        "categorizer_config": CategorizerConfig.all_full(),
        "skip_tests": True,  # unit tests belong to CI, not to every materialization
    }


def run_models(
    context: Context,
    environment: str,
    select_models: Collection[str] | None,
    execution_time: Any,
) -> None:
    """Evaluate the intervals due by cron of an environment that already serves the project.

    No plan: nothing is fingerprinted or promoted, which is what makes `sqlmesh run` cheap. What is
    due is what `plan(run=True)` fills (docs/adr/0007): each model's cron as of `execution_time`,
    which also ends the run (SQLMesh's run otherwise ends at the wall clock, its plan at the
    execution time). The janitor is left to `sqlmesh janitor`. Failures reach the console like a
    plan's; nothing is raised.
    """
    with recursion_headroom(len(select_models or ())):
        context.run(
            environment,
            select_models=list(select_models) if select_models is not None else None,
            execution_time=execution_time,
            end=execution_time,
            skip_janitor=True,
        )


def run_standalone_audits(
    context: Context,
    environment: str,
    audits: Collection[str],
    execution_time: Any,
    start: Any = None,
    end: Any = None,
) -> None:
    """Evaluate standalone audits of an environment for their intervals due as of
    `execution_time` (bounded by `start`/`end` as a windowed plan is), as `sqlmesh run` would.

    SQLMesh 0.236's selector knows models only: a plan's `select_models`/`backfill_models` and a
    run's `select_models` expand to models, so a plan or run with a selection never evaluates a
    standalone audit (its node is left out, with no interval). SQLMesh's scheduler selects by
    snapshot name, audits included: this runs it for just these audit nodes once the models they
    query are done, so results reach the console and the notification targets as in a run
    without a selection. Failures reach the console; nothing is raised.
    """
    context.scheduler(environment).run(
        environment,
        start=start,
        end=end or execution_time,
        execution_time=execution_time,
        selected_snapshots=set(audits),
        run_environment_statements=True,  # as every `sqlmesh run` does
    )


def execution_timestamp(value: Any = None) -> int:
    """SQLMesh's "now" for an execution, in epoch ms: `value` as SQLMesh reads it, or the clock.

    Fixed once per execution, so that what SQLMesh fills and what is then checked for being due
    refer to the same moment."""
    return to_timestamp(value) if value else now_timestamp()


@dataclass(frozen=True)
class DueIntervals:
    """What SQLMesh's state says is due for one model as of an execution time."""

    missing: tuple[tuple[int, int], ...]  # due by cron and not recorded, [start, end) epoch ms
    due_until: int  # end of the latest interval the model's cron makes due (epoch ms)
    end: int | None  # the model's `end` (exclusive, epoch ms), if it has one
    signals: tuple[str, ...]  # the model's signals, by name
    parents: tuple[str, ...]  # the SQLMesh models it reads

    @property
    def past_end(self) -> bool:
        """Intervals are due after the model's `end`: SQLMesh never fills those."""
        return self.end is not None and self.end < self.due_until


def due_intervals(
    context: Context,
    environment: str,
    models: Collection[str],
    execution_time: int,
    start: Any = None,
    end: Any = None,
) -> dict[str, DueIntervals]:
    """Per model of `models` in the environment: the intervals due by its cron as of
    `execution_time` that SQLMesh has not recorded, computed the way SQLMesh's scheduler does
    (its `missing_intervals`, from the snapshots in state, deployability as in a run).

    `start`/`end` bound the check as they bound a windowed plan; by default it ends at the
    execution time, as plans and our runs do.
    """
    env = context.state_reader.get_environment(environment)
    if env is None:
        return {}
    infos = {info.snapshot_id: info for info in env.snapshots}
    names = set(models)
    wanted = {snapshot_id for snapshot_id, info in infos.items() if info.name in names}
    snapshots = context.state_reader.get_snapshots(_with_ancestors(wanted, infos))
    deployability = (
        DeployabilityIndex.all_deployable()
        if environment == PROD
        else DeployabilityIndex.create(snapshots, start=start)
    )
    missing = missing_intervals(
        snapshots,
        start=start,
        end=end or execution_time,
        execution_time=execution_time,
        deployability_index=deployability,
    )
    missing_by_name = {s.name: intervals for s, intervals in missing.items()}
    return {
        snapshot.name: DueIntervals(
            missing=tuple((int(a), int(b)) for a, b in missing_by_name.get(snapshot.name, [])),
            due_until=_due_until(snapshot, execution_time),
            end=to_timestamp(make_exclusive(snapshot.node.end)) if snapshot.node.end else None,
            signals=tuple(name for name, _ in snapshot.model.signals),
            parents=tuple(p.name for p in snapshot.parents if p in infos),
        )
        for snapshot_id, snapshot in snapshots.items()
        if snapshot_id in wanted and snapshot.is_model
    }


def _with_ancestors(ids: set[Any], infos: dict[Any, Any]) -> set[Any]:
    """SQLMesh infers a model's start from its parents when the model has none."""
    found: set[Any] = set()
    pending = list(ids)
    while pending:
        snapshot_id = pending.pop()
        if snapshot_id in found or snapshot_id not in infos:
            continue
        found.add(snapshot_id)
        pending.extend(infos[snapshot_id].parents)
    return found


def _due_until(snapshot: Any, execution_time: int) -> int:
    """The upper bound SQLMesh's `Snapshot.missing_intervals` puts on what cron makes due."""
    node = snapshot.node
    bound = to_timestamp(node.cron_floor(execution_time))
    if not snapshot.model.allow_partials:
        bound = to_timestamp(node.interval_unit.cron_floor(bound))
    return bound


def finalized_plan_id(context: Context, environment: str) -> str | None:
    """The id of the plan that last finished updating `environment`, if any."""
    env = context.state_reader.get_environment(environment)
    return env.plan_id if env is not None and env.finalized_ts else None


def serves_project(context: Context, environment: str) -> bool:
    """True when `environment` holds exactly the snapshots of the loaded project (no edits left
    to plan). Fingerprints every model: call it after a plan, which computed them anyway."""
    env = context.state_reader.get_environment(environment)
    if env is None or not env.finalized_ts:
        return False
    local = {s.snapshot_id for s in context.snapshots.values()}
    return local == {s.snapshot_id for s in env.snapshots}


def changed_models(context: Context, environment: str, names: Iterable[str]) -> set[str]:
    """Those of `names` the environment has in another version than the loaded project's (a
    plan of them changes the environment). Fingerprints the models: after a plan, which computed
    them anyway."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return set()
    deployed = {s.name: s.snapshot_id for s in env.snapshots}
    local = context.snapshots
    return {
        name
        for name in names
        if name in deployed and name in local and local[name].snapshot_id != deployed[name]
    }


def has_metadata_only_changes(context: Context, environment: str) -> bool:
    """True when a loaded model differs from its deployed version in metadata only (audits,
    description, ...). SQLMesh 0.236 audits such a model on its existing data in a plan without
    `run`, but a plan with `run=True` skips that audit stage (measured: an added audit ran only
    without `run`)."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return False
    deployed = {info.name: info.fingerprint for info in env.snapshots}
    # A snapshot's own hashes are its model's: compare those, without building every snapshot
    # (which fingerprints the parents too) ahead of the plan that builds them anyway.
    for model in context.models.values():
        before = deployed.get(model.fqn)
        if (
            before is not None
            and before.data_hash == model.data_hash
            and before.metadata_hash != model.metadata_hash
        ):
            return True
    return False


def downstream(context: Context, environment: str, names: Iterable[str]) -> set[str]:
    """Every model below `names` in the environment (as SQLMesh's restatement cascades, from its
    state) or in the loaded project (models not deployed yet): a restatement of `names` restates
    the former, and the decision says why it leaves the latter alone. Standalone audits are
    nodes, not models: left out."""
    wanted = set(names)
    env = context.state_reader.get_environment(environment)
    children: dict[str, set[str]] = {}
    for snapshot in env.snapshots if env else ():
        if snapshot.is_audit:
            continue
        for parent in snapshot.parents:
            children.setdefault(parent.name, set()).add(snapshot.name)
    found: set[str] = set()
    pending = list(wanted)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    for name in wanted:
        if name in context.dag:
            found.update(n for n in context.dag.downstream(name) if n in context.models)
    return found - wanted


def upstream(context: Context, names: Iterable[str]) -> set[str]:
    """Every node above `names` that SQLMesh knows as a model: EMBEDDED and declared EXTERNAL
    models included (SQLMesh inlines or resolves them from the plan's own snapshots), tables
    nobody declared left out."""
    result: set[str] = set()
    for name in names:
        result.update(context.dag.upstream(name))
    return {name for name in result if name in context.models}


def table_info(
    snapshot: Any, naming_info: Any | None, dialect: str | None, representative: bool = True
) -> TableInfo:
    """Where a snapshot's data is (a `Snapshot` or a `SnapshotTableInfo`: both name it alike); the
    environment's view only when its `naming_info` is known. A snapshot a plan does not deploy
    as-is (`representative` False: a forward-only change in a development environment) writes,
    and its view reads, its development table."""
    info = TableInfo(
        snapshot_version=snapshot.version,
        fingerprint=snapshot.fingerprint.to_identifier(),
        physical_table=snapshot.table_name(representative),
    )
    if naming_info is not None:
        info["view"] = snapshot.qualified_view_name.for_environment(naming_info, dialect=dialect)
    return info


def promoted_tables(context: Context, environment: str) -> dict[str, TableInfo]:
    """Per promoted model: where its data is, with the environment's view."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return {}
    dialect = context.default_dialect
    return {info.name: table_info(info, env.naming_info, dialect) for info in env.snapshots}


def served_table(table: TableInfo, promoted: bool = True) -> str | None:
    """What the environment serves of a model, to count its rows (`dagster/row_count`): its view
    once SQLMesh promoted it; before that (a plan reports a model as soon as its data is
    written) the physical table the view is about to read, as `table_info` named it."""
    return (promoted and table.get("view")) or table.get("physical_table")


def count_rows(context: Context, table: str) -> int | None:
    try:
        row = context.engine_adapter.fetchone(f"SELECT COUNT(*) FROM {table}")
    except Exception:  # a row count is a convenience; never fail a run for it
        return None
    return int(row[0]) if row else None
