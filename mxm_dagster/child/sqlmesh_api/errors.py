"""What a SQLMesh error means for a run, read from SQLMesh's exception types and the objects
they carry, never from their message texts (ADR 16).

Measured the same on every supported minor (0.233 to 0.236; `sqlmesh/utils/errors.py`,
`core/plan/evaluator.py` and `core/scheduler.py` are unchanged across them), and tested on the
oldest and the pinned one (tests/integration/child/test_sqlmesh_errors.py):
- a model that fails while a plan is applied reaches the console's `log_failed_models` as a
  `NodeExecutionFailedError` whose `node` names it; the plan then raises a bare `PlanError`;
- a blocking audit failure is that error's cause, a `NodeAuditsErrors` holding the `AuditError`s
  (audit name, arguments, row count, query);
- a destructive change to a forward-only model is refused in one of two places: by the plan
  builder, which knows both schemas, calls the console's `log_destructive_change` (the model and
  SQLMesh's alter operations, `error=True`) and raises a bare `PlanError`; or, when a schema is
  only known from the table, by the migration stage: a `DestructiveChangeError` caused a
  `NodeExecutionFailedError` (its node the model's snapshot), while handling which the
  evaluator raised a `PlanError`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlmesh.utils.concurrency import NodeExecutionFailedError
from sqlmesh.utils.errors import AuditError, DestructiveChangeError, NodeAuditsErrors, PlanError


def node_name(node: Any) -> str:
    """A failed node's name: scheduler nodes have `snapshot_name`; the nodes of a failed table
    creation or migration are `SnapshotId`s, which have `name`."""
    name = getattr(node, "snapshot_name", None) or getattr(node, "name", None)
    return str(name if name is not None else node)


def blocking_audit_errors(error: BaseException) -> list[AuditError]:
    """The failed blocking audits that stopped a node (`log_failed_models`' error), if any."""
    cause = error.__cause__
    return list(cause.errors) if isinstance(cause, NodeAuditsErrors) else []


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def destructive_refusal(exc: BaseException, announced: Collection[str]) -> list[str] | None:
    """The models whose destructive change made SQLMesh refuse the plan `exc` stopped, or None
    when `exc` is no such refusal. `announced`: the models the console's
    `log_destructive_change` was told would be refused (`error=True`) during this plan."""
    if not isinstance(exc, PlanError):
        return None
    migrated = {
        node_name(error.node)
        for error in _chain(exc)
        if isinstance(error, NodeExecutionFailedError)
        and isinstance(error.__cause__, DestructiveChangeError)
    }
    if migrated:
        return sorted(migrated)
    if type(exc) is PlanError and announced:  # the builder's refusal has no type of its own
        return sorted(announced)
    return None


def migration_details(exc: BaseException) -> list[str]:
    """SQLMesh's own account of each destructive change the migration stage refused."""
    return [str(error) for error in _chain(exc) if isinstance(error, DestructiveChangeError)]


def is_plan_failure(exc: BaseException) -> bool:
    """True for the error SQLMesh raises after models failed while it applied a plan: a bare
    `PlanError` (its subclasses are refusals before anything ran). The caller also needs the
    console to have heard of the failed models (`log_failed_models`) during that plan."""
    return type(exc) is PlanError
