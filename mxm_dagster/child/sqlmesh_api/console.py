"""The console SQLMesh calls back while it plans and runs, forwarding into an
`OutcomeRecorder`, and the notification target that hears audit failures."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import PrivateAttr
from sqlmesh.core.console import NoopConsole
from sqlmesh.core.notification_target import BaseNotificationTarget, NotificationEvent
from sqlmesh.utils.errors import NodeAuditsErrors, format_destructive_change_msg

from mxm_dagster.child.recorder import OutcomeRecorder
from mxm_dagster.child.sqlmesh_api.state import table_info
from mxm_dagster.common.names import safe_name
from mxm_dagster.records.results import AuditOutcome, TableInfo

# "'not_null' audit error: 3 rows failed." as SQLMesh formats an AuditError.
_AUDIT_ERROR = re.compile(r"'(?P<name>[^']+)' audit error: (?P<count>\d+) rows? failed")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # SQLMesh underlines the offending token for terminals


def _hook(method: Callable[..., None]) -> Callable[..., None]:
    """A console hook SQLMesh calls from its scheduler: whatever goes wrong in it is recorded on
    the run's log and swallowed. SQLMesh calls `update_snapshot_evaluation_progress` in a
    `finally` of its node: an exception there fails the node and, in a plan, the whole plan."""

    @functools.wraps(method)
    def guarded(self: ForwardingConsole, *args: Any, **kwargs: Any) -> None:
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


def rendered_args(args: dict[str, Any]) -> dict[str, str]:
    """An audit's arguments as SQL text, without `blocking` (which SQLMesh pops when it runs)."""
    return {k: sql_text(v) for k, v in args.items() if k != "blocking"}


def sql_text(value: Any) -> str:
    return value.sql() if hasattr(value, "sql") else str(value)


def check_names(audits_with_args: Iterable[tuple[Any, Any]]) -> list[str]:
    """One check name per use of an audit; the second use of one audit gets `_2`, and so on."""
    seen: dict[str, int] = {}
    names: list[str] = []
    for audit, _ in audits_with_args:
        seen[audit.name] = seen.get(audit.name, 0) + 1
        name = safe_name(audit.name)
        names.append(name if seen[audit.name] == 1 else f"{name}_{seen[audit.name]}")
    return names


class AuditFailureListener(BaseNotificationTarget):
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


class ForwardingConsole(NoopConsole):
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
        self._deployability: Any = None  # the plan being applied's, while it is applied

    def plan(
        self,
        plan_builder: Any,
        auto_apply: bool,
        default_catalog: str | None,
        no_diff: bool = False,
        no_prompts: bool = False,
    ) -> None:
        """Applies the plan as SQLMesh's `NoopConsole` does (its errors reach the caller), knowing
        which tables the environment's views will read: a plan reports a model as soon as its data
        is written, before its view points there."""
        self._remember_plan(plan_builder)
        try:
            super().plan(plan_builder, auto_apply, default_catalog, no_diff, no_prompts)
        finally:
            self._deployability = None

    def _remember_plan(self, plan_builder: Any) -> None:
        """The plan's deployability, and which models it restates: SQLMesh restates every model
        below a restated one, so the plan, not the request, says which were restated."""
        try:
            # `Context.plan` built the plan before calling this: `build()` returns that one
            plan = plan_builder.build()
        except Exception:  # the plan cannot be built: applying it raises that error again
            self._deployability = None
            return
        self._deployability = plan.deployability_index
        self._recorder.restating({s_id.name for s_id in plan.restatements})

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
        # Where SQLMesh checks its circuit breaker: the one exception a hook lets through is
        # `ExecutionCancelled` (a BaseException, past `_hook`), after the run worker's SIGTERM.
        self._recorder.model_started()

    def _table_info(self, snapshot: Any) -> TableInfo:
        """Where the model's data is; a standalone audit has no table (`table_name()` raises)."""
        if not snapshot.is_model:
            return TableInfo()
        try:
            index = self._deployability
            representative = index is None or index.is_representative(snapshot)
            return table_info(snapshot, self._naming_info, self.view_dialect, representative)
        except Exception as exc:
            self._recorder.hook_failed("table info", exc)
            return TableInfo()

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
        self._recorder.model_ended()
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
        failed_args = rendered_args(audit_error.audit_args or {})
        names = check_names(uses)
        name = audit_error.audit_name
        candidates = [i for i, (audit, _) in enumerate(uses) if audit.name == name]
        exact = [i for i in candidates if rendered_args(uses[i][1]) == failed_args]
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
        self._recorder.failed(model, ANSI.sub("", str(cause or error)))

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
            ANSI.sub("", format_destructive_change_msg(snapshot_name, alter_operations, dialect)),
        )

    @_hook
    def log_error(self, message: str) -> None:
        self._recorder.message(f"SQLMesh error: {message}")

    @_hook
    def log_status_update(self, message: str) -> None:
        self._recorder.message(message)
