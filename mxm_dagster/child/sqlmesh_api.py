"""The one module that touches SQLMesh's Python API.

Everything else in mxm_dagster works on the plain records in `specs` and `results`, so a SQLMesh
upgrade that moves an internal API changes this file only.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import PrivateAttr
from sqlmesh import Context
from sqlmesh.core.config import Config
from sqlmesh.core.config.categorizer import CategorizerConfig
from sqlmesh.core.config.loader import load_configs
from sqlmesh.core.console import NoopConsole, set_console
from sqlmesh.core.constants import PROD
from sqlmesh.core.notification_target import BaseNotificationTarget, NotificationEvent
from sqlmesh.core.snapshot import DeployabilityIndex, missing_intervals
from sqlmesh.utils.date import make_exclusive, now_timestamp, to_timestamp
from sqlmesh.utils.errors import NodeAuditsErrors, PlanError, format_destructive_change_msg

from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.common.errors import ProjectLoadError
from mxm_dagster.common.names import safe_name
from mxm_dagster.records.results import AuditOutcome
from mxm_dagster.records.specs import AuditSpec, ColumnSpec, ModelSpec, ProjectSpec

# "'not_null' audit error: 3 rows failed." as SQLMesh formats an AuditError.
_AUDIT_ERROR = re.compile(r"'(?P<name>[^']+)' audit error: (?P<count>\d+) rows? failed")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # SQLMesh underlines the offending token for terminals

# SQLMesh compiles some built-in audit macros to Python that compares with `is not` a literal;
# the warning is about SQLMesh's generated code, not the user's project, and floods run logs.
warnings.filterwarnings("ignore", category=SyntaxWarning, message='"is not" with a literal')


# --------------------------------------------------------------------------- configuration


def _is_remote(path: str) -> bool:
    return path.startswith(("md:", "motherduck:", "s3://", "http"))


def _absolute(path: str, base: Path) -> str:
    if path == ":memory:" or _is_remote(path):
        return path
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _resolve_connection(connection: Any, base: Path) -> Any:
    """Make a DuckDB connection's relative file paths relative to the project, not the cwd."""
    if connection is None or getattr(connection, "type_", None) not in {"duckdb", "motherduck"}:
        return connection
    update: dict[str, Any] = {}
    database = getattr(connection, "database", None)
    if isinstance(database, str):
        update["database"] = _absolute(database, base)
    catalogs = getattr(connection, "catalogs", None)
    if catalogs:
        resolved: dict[str, Any] = {}
        for name, target in catalogs.items():
            if isinstance(target, str):
                resolved[name] = _absolute(target, base)
            elif hasattr(target, "path"):
                resolved[name] = target.model_copy(update={"path": _absolute(target.path, base)})
            else:
                resolved[name] = target
        update["catalogs"] = resolved
    return connection.model_copy(update=update) if update else connection


def load_project_config(project_dir: Path) -> Config:
    """Load config.yaml/config.py with DuckDB paths anchored at the project directory."""
    try:
        configs = load_configs(None, Config, [project_dir])
    except Exception as exc:  # SQLMesh raises ConfigError and plain errors alike
        raise ProjectLoadError(f"Cannot read the SQLMesh config in {project_dir}: {exc}") from exc
    config = next(iter(configs.values()))
    gateways = {
        name: gateway.model_copy(
            update={
                "connection": _resolve_connection(gateway.connection, project_dir),
                "state_connection": _resolve_connection(gateway.state_connection, project_dir),
                "test_connection": _resolve_connection(gateway.test_connection, project_dir),
            }
        )
        for name, gateway in config.gateways.items()
    }
    update: dict[str, Any] = {"gateways": gateways}
    for field_name in ("default_connection", "default_test_connection_"):
        update[field_name] = _resolve_connection(getattr(config, field_name), project_dir)
    return config.model_copy(update=update)


def gateway_names(config: Config) -> list[str]:
    return sorted(config.gateways)


def default_gateway(config: Config) -> str:
    return config.default_gateway or next(iter(config.gateways), "")


def warehouse_path(config: Config, gateway: str | None) -> Path | None:
    """The DuckDB file behind a gateway's connection, if it is one: with `catalogs:`, the first
    catalog's, which is SQLMesh's default catalog (`database` and `catalogs` exclude each other)."""
    connection = config.get_connection(gateway or default_gateway(config))
    if getattr(connection, "type_", None) != "duckdb":
        return None
    database = getattr(connection, "database", None)
    catalogs = getattr(connection, "catalogs", None) or {}
    if not database and catalogs:
        first = next(iter(catalogs.values()))
        database = first if isinstance(first, str) else getattr(first, "path", None)
    if database and database != ":memory:" and not _is_remote(database):
        return Path(database)
    return None


# --------------------------------------------------------------------------- console


def _hook(method: Callable[..., None]) -> Callable[..., None]:
    """A console hook SQLMesh calls from its scheduler: whatever goes wrong in it is recorded on
    the run's log and swallowed. SQLMesh calls `update_snapshot_evaluation_progress` in a
    `finally` of its node: an exception there fails the node and, in a plan, the whole plan."""

    @functools.wraps(method)
    def guarded(self: _ForwardingConsole, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            try:
                self._recorder.hook_failed(method.__name__, exc)
            except Exception:  # even recording must not reach SQLMesh
                pass

    return guarded


def _node_name(node: Any) -> str:
    """A failed node's name: scheduler nodes have `snapshot_name`; the nodes of a failed table
    creation (`SnapshotCreationFailedError`) are `SnapshotId`s, which have `name`."""
    name = getattr(node, "snapshot_name", None) or getattr(node, "name", None)
    return str(name if name is not None else node)


def _rendered_args(args: dict[str, Any]) -> dict[str, str]:
    """An audit's arguments as SQL text, without `blocking` (which SQLMesh pops when it runs)."""
    return {k: _sql(v) for k, v in args.items() if k != "blocking"}


def _sql(value: Any) -> str:
    return value.sql() if hasattr(value, "sql") else str(value)


def _check_names(audits_with_args: Iterable[tuple[Any, Any]]) -> list[str]:
    """One check name per use of an audit; the second use of one audit gets `_2`, and so on."""
    seen: dict[str, int] = {}
    names: list[str] = []
    for audit, _ in audits_with_args:
        seen[audit.name] = seen.get(audit.name, 0) + 1
        name = safe_name(audit.name)
        names.append(name if seen[audit.name] == 1 else f"{name}_{seen[audit.name]}")
    return names


class _AuditFailureListener(BaseNotificationTarget):
    """Hears every failing audit, with its arguments, as SQLMesh notifies it.

    The console's `log_warning` names only the audit, and a blocking failure arrives only at the
    end of the run; SQLMesh notifies an `AuditError` (name, arguments, row count, query) for every
    failing audit of every batch, blocking or not, on the thread that runs the batch.
    """

    type_: Literal["mxm_dagster_audits"] = "mxm_dagster_audits"
    notify_on: frozenset[NotificationEvent] = frozenset({NotificationEvent.AUDIT_FAILURE})
    _console: Any = PrivateAttr(default=None)

    def notify_audit_failure(self, audit_error: Any, *args: Any, **kwargs: Any) -> None:
        if self._console is not None:
            self._console.audit_failed(audit_error)


class _ForwardingConsole(NoopConsole):
    """Turns SQLMesh's console callbacks into plain calls on an `OutcomeRecorder`.

    Every hook is wrapped by `_hook`: ours must never break SQLMesh. The evaluating thread is the
    one that announced the snapshot, so a thread-local names the node an audit failure belongs to.
    """

    def __init__(self, recorder: OutcomeRecorder) -> None:
        super().__init__()
        self._recorder = recorder
        self._current = threading.local()
        self._naming_info: Any = None
        self._audit_only = False  # the scheduler call in progress only audits (no evaluation)
        self.view_dialect: str | None = None  # how view names are written, as in `promoted_tables`

    @_hook
    def start_evaluation_progress(
        self,
        batched_intervals: dict[Any, Any],
        environment_naming_info: Any,
        default_catalog: str | None,
        audit_only: bool = False,
    ) -> None:
        self._naming_info = environment_naming_info
        # SQLMesh passes `audit_only` here only, not to the per-batch hooks (0.236)
        self._audit_only = audit_only
        self._recorder.batches_planned(
            {snapshot.name: len(intervals) for snapshot, intervals in batched_intervals.items()},
            audit_only=audit_only,
        )

    @_hook
    def start_snapshot_evaluation_progress(self, snapshot: Any, audit_only: bool = False) -> None:
        self._current.snapshot = snapshot
        self._current.claimed = set()  # audit uses whose failure this batch already recorded
        self._current.heard = 0  # failures the listener heard of in this batch

    def _table_info(self, snapshot: Any) -> dict[str, str]:
        """Where the model's data is; a standalone audit has no table (`table_name()` raises)."""
        if not snapshot.is_model:
            return {}
        try:
            info = {
                "snapshot_version": snapshot.version,
                "fingerprint": snapshot.fingerprint.to_identifier(),
                "physical_table": snapshot.table_name(),
            }
            if self._naming_info is not None:
                info["view"] = snapshot.qualified_view_name.for_environment(
                    self._naming_info, dialect=self.view_dialect
                )
        except Exception as exc:
            self._recorder.hook_failed("table info", exc)
            return {}
        return info

    @_hook
    def update_snapshot_evaluation_progress(
        self,
        snapshot: Any,
        interval: Any,
        batch_idx: int,
        duration_ms: int | None,
        num_audits_passed: int,
        num_audits_failed: int,
        audit_only: bool = False,
        execution_stats: Any = None,
        auto_restatement_triggers: Any = None,
    ) -> None:
        self._current.snapshot = None
        unheard = num_audits_failed - getattr(self._current, "heard", 0)
        if unheard > 0:  # SQLMesh counted failures no notification told us about
            self._recorder.audits_unheard(snapshot.name, unheard)
        self._recorder.evaluated(
            snapshot.name,
            (int(interval[0]), int(interval[1])),
            duration_ms,
            num_audits_passed,
            num_audits_failed,
            lambda: self._table_info(snapshot),
            audit_only=audit_only or self._audit_only,
        )

    def _check_name(self, node: Any, audit_error: Any) -> str:
        """The check of the failing use: the first use with this name and these arguments whose
        failure this batch did not record yet (the same audit may be used twice)."""
        claimed: set[int] = getattr(self._current, "claimed", set())
        uses = list(getattr(node, "audits_with_args", None) or [])
        failed_args = _rendered_args(audit_error.audit_args or {})
        names = _check_names(uses)
        name = audit_error.audit_name
        candidates = [i for i, (audit, _) in enumerate(uses) if audit.name == name]
        exact = [i for i in candidates if _rendered_args(uses[i][1]) == failed_args]
        for index in [*exact, *candidates]:
            if index not in claimed:
                claimed.add(index)
                return names[index]
        return safe_name(audit_error.audit_name)

    @_hook
    def audit_failed(self, audit_error: Any) -> None:
        if getattr(self._current, "last_error", None) is audit_error:
            return  # notified twice: to the run's user and to the model's owner, the same user
        self._current.last_error = audit_error
        snapshot = getattr(self._current, "snapshot", None)
        node = snapshot.node if snapshot is not None else audit_error.model
        model = snapshot.name if snapshot is not None else getattr(node, "fqn", None)
        if model is None:
            self._recorder.message(f"SQLMesh audit failure of no known model: {audit_error}")
            return
        self._current.heard = getattr(self._current, "heard", 0) + 1
        self._recorder.audit_failed(
            model,
            AuditOutcome(
                name=audit_error.audit_name,
                passed=False,
                blocking=False,  # until `log_failed_models` says the failure stopped the batch
                failed_rows=int(audit_error.count),
                query=audit_error.query.sql(audit_error.adapter_dialect),
                check_name=self._check_name(node, audit_error),
                failed_batches=1,
            ),
            token=id(audit_error),
        )

    @_hook
    def log_failed_models(self, errors: list[Any]) -> None:
        for error in errors:
            self._failed_model(error)

    @_hook
    def _failed_model(self, error: Any) -> None:
        model = _node_name(error.node)
        cause = error.__cause__
        if isinstance(cause, NodeAuditsErrors):
            for audit_error in cause.errors:
                if not self._recorder.audit_blocked(id(audit_error)):  # the listener missed it
                    self._blocking_failure(model, audit_error)
        self._recorder.failed(model, _ANSI.sub("", str(cause or error)))

    def _blocking_failure(self, model: str, audit_error: Any) -> None:
        """Record a blocking failure the listener did not hear of (attributed by name only)."""
        self._recorder.audit_failed(
            model,
            AuditOutcome(
                name=audit_error.audit_name,
                passed=False,
                blocking=True,
                failed_rows=int(audit_error.count),
                query=audit_error.query.sql(audit_error.adapter_dialect),
                failed_batches=1,
            ),
            token=id(audit_error),
        )
        self._recorder.audit_blocked(id(audit_error))

    @_hook
    def log_skipped_models(self, snapshot_names: set[str]) -> None:
        for name in snapshot_names:
            self._recorder.skipped(name)

    @_hook
    def log_warning(self, short_message: str, long_message: str | None = None) -> None:
        """Non-blocking audit failures also arrive here, naming only the audit; the listener
        recorded them already, with their arguments."""
        if not _AUDIT_ERROR.search(long_message or short_message):
            self._recorder.message(f"SQLMesh warning: {short_message.strip()}")

    @_hook
    def log_destructive_change(
        self, snapshot_name: str, alter_operations: Any, dialect: str, error: bool = True
    ) -> None:
        self._recorder.destructive_change(
            snapshot_name,
            _ANSI.sub("", format_destructive_change_msg(snapshot_name, alter_operations, dialect)),
        )

    @_hook
    def log_error(self, message: str) -> None:
        self._recorder.message(f"SQLMesh error: {message}")

    @_hook
    def log_status_update(self, message: str) -> None:
        self._recorder.message(message)


# --------------------------------------------------------------------------- context


def open_context(
    configs: dict[Path, Config],
    gateway: str | None,
    recorder: OutcomeRecorder | None = None,
    load: bool = True,
) -> Context:
    """Build a SQLMesh Context over the project folders in `configs` whose console reports into
    `recorder`.

    Several folders make a multi-repo project: SQLMesh loads each with its own config and takes
    connections and state from the first. The console is global in SQLMesh and must be set before
    the Context is built. `load=False` reads no model files (state and connections only), as
    SQLMesh's own `sqlmesh run` does; `load_models` loads them later.
    """
    paths = list(configs)
    console = _ForwardingConsole(recorder or OutcomeRecorder())
    set_console(console)
    listener = _AuditFailureListener()
    listener._console = console
    with _load_errors(paths[0]):
        context = Context(
            paths=paths,
            config=dict(configs),
            gateway=gateway,
            load=load,
            notification_targets=[listener],
        )
    console.view_dialect = context.default_dialect
    manager = context.notification_target_manager
    if manager.username:  # SQLMesh then notifies only that user's targets
        manager.user_notification_targets.setdefault(manager.username, set()).add(listener)
    return context


def load_models(context: Context, project_dir: Path) -> None:
    """Load the project's model files into a Context opened with `load=False`."""
    with _load_errors(project_dir):
        context.load()


@contextmanager
def _load_errors(project_dir: Path) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        message = _ANSI.sub("", str(exc))
        raise ProjectLoadError(
            f"SQLMesh could not load the project at {project_dir}: {type(exc).__name__}: {message}"
        ) from exc


def close_context(context: Context) -> None:
    """Release every warehouse and state connection so no DuckDB file lock outlives the call."""
    try:
        context.close()
    except Exception:  # closing must never hide the error that got us here
        pass


# --------------------------------------------------------------------------- introspection


def _audit_specs(model: Any) -> tuple[AuditSpec, ...]:
    specs: list[AuditSpec] = []
    uses = list(model.audits_with_args)
    for (audit, args), check_name in zip(uses, _check_names(uses), strict=True):
        blocking_arg = args.get("blocking")
        blocking = audit.blocking if blocking_arg is None else _sql(blocking_arg).upper() == "TRUE"
        specs.append(
            AuditSpec(audit.name, check_name, blocking, _rendered_args(args), skip=audit.skip)
        )
    return tuple(specs)


def _with_standalone_audits(context: Context, models: dict[str, ModelSpec]) -> None:
    """Attach each standalone audit to the model it queries (ADR 3): with several, the most
    downstream one, the others as the check's extra dependencies. One that queries no model of
    the project becomes no check (nothing in Dagster to report it on)."""
    if not context.standalone_audits:
        return  # most projects: no DAG sort to pay for
    order = {name: i for i, name in enumerate(context.dag.sorted)}
    for audit in sorted(context.standalone_audits.values(), key=lambda a: a.name):
        queried = sorted(
            (n for n in audit.depends_on if n in models and not models[n].is_external),
            key=lambda n: (order.get(n, -1), n),
        )
        if not queried:
            continue
        target = models[queried[-1]]
        taken = {a.check_name for a in target.audits}
        check_name = safe_name(audit.name)
        while check_name in taken:
            check_name = f"{check_name}_standalone"
        spec = AuditSpec(
            audit.name,
            check_name,
            blocking=False,  # SQLMesh refuses blocking standalone audits (0.236)
            skip=audit.skip,
            standalone=True,
            reads=tuple(queried[:-1]),
        )
        models[target.name] = replace(target, audits=(*target.audits, spec))


@lru_cache(maxsize=1024)
def _type_sql(data_type: Any, dialect: str) -> str:
    """A column type as SQL. Projects repeat a handful of types across thousands of columns, and
    generating the SQL of a type is most of what introspecting a model costs."""
    return data_type.sql(dialect=dialect)


def _column_specs(model: Any) -> tuple[ColumnSpec, ...]:
    try:
        columns = model.columns_to_types or {}
    except Exception:  # a model whose columns cannot be inferred still loads
        columns = {}
    descriptions = model.column_descriptions or {}
    return tuple(
        ColumnSpec(name, _type_sql(data_type, model.dialect), descriptions.get(name))
        for name, data_type in columns.items()
    )


#: Kinds SQLMesh never evaluates: an EXTERNAL table is another system's, an EMBEDDED model is
#: inlined as a subquery into the models that read it and has no table, intervals or audit run
#: (measured on 0.236: no intervals recorded, no physical table). Their assets are sources, not
#: steps: a step would report an outcome SQLMesh never had.
_KINDS_WITHOUT_TABLE = {"EXTERNAL", "EMBEDDED"}


def _model_spec(model: Any) -> ModelSpec:
    table = model.fully_qualified_table
    kind = model.kind.name.value if hasattr(model.kind.name, "value") else str(model.kind.name)
    is_external = kind in _KINDS_WITHOUT_TABLE
    time_column = getattr(model.kind, "time_column", None)
    path = getattr(model, "_path", None)
    return ModelSpec(
        name=model.fqn,
        catalog=table.catalog or None,
        schema=table.db,
        table=table.name,
        kind=kind,
        is_external=is_external,
        depends_on=tuple(sorted(model.depends_on)),
        description=model.description,
        owner=model.owner,
        tags=tuple(model.tags),
        columns=_column_specs(model),
        audits=() if is_external else _audit_specs(model),
        cron=None if is_external else model.cron,
        interval_unit=None if is_external else model.interval_unit.value,
        start=None if is_external or model.start is None else str(model.start),
        start_ms=None if is_external or model.start is None else to_timestamp(model.start),
        cron_tz=None if is_external or not model.cron_tz else str(model.cron_tz),
        time_column=time_column.column.name if time_column is not None else None,
        grain=tuple(g.sql() for g in getattr(model, "grains", ()) or ()),
        data_hash=model.data_hash,
        file_path=str(path) if path else None,
        dialect=model.dialect,
    )


def _source_spec(name: str) -> ModelSpec:
    """A table a model reads that the project does not declare: still shown as a source."""
    parts = [p.strip('"') for p in name.split(".")]
    catalog, schema, table = ([None] * (3 - len(parts)) + parts)[-3:]
    return ModelSpec(
        name=name,
        catalog=catalog,
        schema=schema or "",
        table=table or name,
        kind="EXTERNAL",
        is_external=True,
    )


def project_spec(context: Context) -> ProjectSpec:
    models = {model.fqn: _model_spec(model) for model in context.models.values()}
    for spec in list(models.values()):
        for parent in spec.depends_on:
            models.setdefault(parent, _source_spec(parent))
    _with_standalone_audits(context, models)
    engine = context.engine_adapter.dialect
    return ProjectSpec(
        default_catalog=context.default_catalog,
        dialect=context.default_dialect or engine,
        engine=engine,
        models=tuple(sorted(models.values(), key=lambda m: m.name)),
    )


# --------------------------------------------------------------------------- state and plans


def environment_model_names(context: Context, environment: str) -> set[str]:
    """Models promoted in the environment (empty when it does not exist yet)."""
    env = context.state_reader.get_environment(environment)
    return {s.name for s in env.snapshots} if env else set()


@contextmanager
def _recursion_headroom(names: int) -> Iterator[None]:
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
) -> None:
    """Plan and apply without prompts; raises SQLMesh's error when application fails.

    Changes are categorised automatically (every kind of model, Python included), so a model edit
    never stops at a prompt. `select_models=None` plans every model. `run` makes the plan also
    fill every interval due by cron as of `execution_time`, as `sqlmesh plan --run` does: without
    it SQLMesh caps the plan at the environment's latest interval end (docs/adr/0007).
    """
    names = len(select_models or ()) + len(restate_models)
    with _recursion_headroom(names):
        _plan(
            context,
            environment,
            select_models,
            restate_models,
            execution_time,
            start,
            end,
            allow_destructive_models,
            run,
        )


def _plan(
    context: Context,
    environment: str,
    select_models: Collection[str] | None,
    restate_models: Collection[str],
    execution_time: Any,
    start: Any,
    end: Any,
    allow_destructive_models: Collection[str],
    run: bool,
) -> None:
    # A development plan without a selection backfills only the models changed in it; a run
    # fills what is due everywhere, so every model is named for backfill (SQLMesh then also
    # creates the environment's view of each, as it does for a selection).
    every_model = run and select_models is None and environment != PROD
    context.plan(
        environment,
        select_models=list(select_models) if select_models is not None else None,
        backfill_models=["*"] if every_model else None,
        restate_models=list(restate_models) or None,
        execution_time=execution_time,
        start=start,
        end=end,
        run=run,
        allow_destructive_models=list(allow_destructive_models) or None,
        categorizer_config=CategorizerConfig.all_full(),
        skip_tests=True,  # unit tests belong to CI, not to every materialization
        auto_apply=True,
        no_prompts=True,
        no_diff=True,
    )


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
    with _recursion_headroom(len(select_models or ())):
        context.run(
            environment,
            select_models=list(select_models) if select_models is not None else None,
            execution_time=execution_time,
            end=execution_time,
            skip_janitor=True,
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


def has_metadata_only_changes(context: Context, environment: str) -> bool:
    """True when a loaded model differs from its deployed version in metadata only (audits,
    description, ...). SQLMesh 0.236 audits such a model on its existing data in a plan without
    `run`, but a plan with `run=True` skips that audit stage (measured: an added audit ran only
    without `run`)."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return False
    deployed = {info.name: info.fingerprint for info in env.snapshots}
    for snapshot in context.snapshots.values():
        before = deployed.get(snapshot.name)
        if (
            before is not None
            and before.data_hash == snapshot.fingerprint.data_hash
            and before.metadata_hash != snapshot.fingerprint.metadata_hash
        ):
            return True
    return False


def upstream(context: Context, names: Iterable[str]) -> set[str]:
    result: set[str] = set()
    for name in names:
        result.update(context.dag.upstream(name))
    return result


def promoted_tables(context: Context, environment: str) -> dict[str, dict[str, str]]:
    """Per promoted model: snapshot version, fingerprint, physical table and environment view."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return {}
    dialect = context.default_dialect
    tables: dict[str, dict[str, str]] = {}
    for info in env.snapshots:
        tables[info.name] = {
            "snapshot_version": info.version,
            "fingerprint": info.fingerprint.to_identifier(),
            "physical_table": info.table_name(),
            "view": info.qualified_view_name.for_environment(env.naming_info, dialect=dialect),
        }
    return tables


def remove_latest_interval(context: Context, environment: str, model: str) -> tuple[int, int]:
    """Forget the newest interval SQLMesh recorded for `model` (as if it were never filled)."""
    env = context.state_reader.get_environment(environment)
    info = next(s for s in (env.snapshots if env else []) if s.name == model)
    snapshot = context.state_reader.get_snapshots([info.snapshot_id])[info.snapshot_id]
    latest = snapshot.intervals[-1]
    context.state_sync.remove_intervals([(snapshot, latest)], remove_shared_versions=True)
    return int(latest[0]), int(latest[1])


def count_rows(context: Context, table: str) -> int | None:
    try:
        row = context.engine_adapter.fetchone(f"SELECT COUNT(*) FROM {table}")
    except Exception:  # a row count is a convenience; never fail a run for it
        return None
    return int(row[0]) if row else None


def is_destructive_refusal(exc: BaseException) -> bool:
    """True when SQLMesh refused a plan because a forward-only model would lose data."""
    return isinstance(exc, PlanError) and "destructive change" in str(exc).lower()


_DESTRUCTIVE_MODEL = re.compile(r"forward-only model '(?P<model>.+?)'s schema")


def destructive_models(exc: BaseException) -> list[str]:
    """The models SQLMesh's destructive-change error names."""
    return sorted({m["model"] for m in _DESTRUCTIVE_MODEL.finditer(str(exc))})


def is_plan_failure(exc: BaseException) -> bool:
    """True for SQLMesh's "Plan application failed" after some models failed to evaluate."""
    return isinstance(exc, PlanError) and "application failed" in str(exc).lower()


def recorded_intervals(context: Context, environment: str) -> dict[str, list[tuple[int, int]]]:
    """Per promoted model: the [start, end) epoch-ms intervals SQLMesh recorded as filled."""
    env = context.state_reader.get_environment(environment)
    if env is None:
        return {}
    snapshots = context.state_reader.get_snapshots(env.snapshots).values()
    return {s.name: [(int(a), int(b)) for a, b in s.intervals] for s in snapshots}
