"""Records what SQLMesh reports about each model while it evaluates.

SQLMesh calls its console from worker threads (one per concurrent task), so every method takes a
lock. The SQLMesh-facing console class lives in `sqlmesh_api.console`; it forwards into this
recorder, which knows nothing about SQLMesh objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from mxm_dagster.child.cancellation import Cancellation
from mxm_dagster.records.results import AuditOutcome, TableInfo

LogFn = Callable[[str], None]


@dataclass
class ModelRecord:
    """What one execution observed for one model, across all of its interval batches."""

    expected_batches: int = 0
    evaluated_batches: int = 0
    failed_batches: int = 0
    intervals: list[tuple[int, int]] = field(default_factory=list)
    duration_ms: int = 0
    audited_batches: int = 0  # batches of an audit-only run: audits on existing data, none written
    # Per batch whose audits SQLMesh counted: how many ran (a `skip` audit counts as passed)
    audit_counts: list[int] = field(default_factory=list)
    audits_blocked: bool = False  # a batch stopped on blocking audit failures, after all audits ran
    unheard_failures: int = 0  # failures SQLMesh counted that no notification named
    audit_failures: list[AuditOutcome] = field(default_factory=list)  # one per audit and batch
    error: str | None = None
    skipped: bool = False
    table: TableInfo = field(default_factory=lambda: TableInfo())

    @property
    def complete(self) -> bool:
        """Every planned batch evaluated and none failed: the model's data is final."""
        return (
            self.expected_batches > 0
            and self.evaluated_batches >= self.expected_batches
            and not self.failed_batches
        )


class OutcomeRecorder:
    """Thread-safe collector of per-model evaluation events.

    `on_complete` is called (on SQLMesh's worker thread) as soon as a model's last planned batch
    succeeded, so its Dagster step can report while SQLMesh evaluates the rest.
    """

    def __init__(
        self,
        log: LogFn | None = None,
        on_complete: Callable[[str, ModelRecord], None] | None = None,
        cancellation: Cancellation | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._log = log or (lambda _msg: None)
        self.on_complete = on_complete
        self.cancellation = cancellation  # where a terminated run stops SQLMesh
        self.records: dict[str, ModelRecord] = {}
        self.destructive_changes: dict[str, str] = {}  # model -> what SQLMesh would drop
        self.owners: dict[str, str] = {}  # standalone audit node -> the model its check is on
        self.hook_errors: list[str] = []  # our console hooks that failed; SQLMesh carried on
        self._failure_tokens: dict[int, tuple[str, int]] = {}  # token -> (model, failure index)
        #: Models a plan of this execution restated, as SQLMesh cascaded the restatement
        self.restated: set[str] = set()

    def restating(self, names: set[str]) -> None:
        """A plan restates `names`: the models asked for and every model below them that SQLMesh
        restates with them (it skips seeds and models with `disable_restatement`)."""
        with self._lock:
            self.restated |= names

    def model_started(self) -> None:
        """SQLMesh starts evaluating a model; raises `ExecutionCancelled` after a SIGTERM."""
        if self.cancellation is not None:
            self.cancellation.model_started()

    def model_ended(self) -> None:
        if self.cancellation is not None:
            self.cancellation.model_ended()

    def _record(self, model: str) -> ModelRecord:
        return self.records.setdefault(model, ModelRecord())

    def batches_planned(self, batches: dict[str, int], audit_only: bool = False) -> None:
        """An audit-only run plans batches that write nothing: they do not make a model due."""
        with self._lock:
            for model, count in batches.items():
                record = self._record(model)
                if not audit_only:
                    record.expected_batches = count

    def evaluated(
        self,
        model: str,
        interval: tuple[int, int],
        duration_ms: int | None,
        audits_passed: int,
        audits_failed: int,
        table: Callable[[], TableInfo],
        audit_only: bool = False,
    ) -> None:
        with self._lock:
            record = self._record(model)
            if duration_ms is None:  # SQLMesh reports a failed batch with no duration
                record.failed_batches += 1
                return
            record.audit_counts.append(audits_passed + audits_failed)
            if not record.table:
                record.table = table()
            if audit_only:  # no interval written: never reported as an evaluation
                record.audited_batches += 1
                return
            record.evaluated_batches += 1
            record.intervals.append(interval)
            record.duration_ms += duration_ms
            complete = record.complete
        if complete and self.on_complete is not None:
            try:
                self.on_complete(model, record)
            except Exception as exc:  # reporting early must never break SQLMesh's evaluation
                self._log(f"Could not report {model} early: {exc}")

    def audit_failed(self, model: str, audit: AuditOutcome, token: int | None = None) -> None:
        """One audit failed in one batch. `token` names the failure for `audit_blocked`."""
        with self._lock:
            failures = self._record(model).audit_failures
            failures.append(audit)
            if token is not None:
                self._failure_tokens[token] = (model, len(failures) - 1)
        self._log(
            f"SQLMesh audit {audit.check_name or audit.name} on {model} failed: "
            f"{audit.failed_rows} rows"
        )

    def audits_unheard(self, model: str, count: int) -> None:
        """SQLMesh counted failing audits we were not told about: no pass can be claimed."""
        with self._lock:
            self._record(model).unheard_failures += count
        self._log(
            f"SQLMesh counted {count} failing audit(s) of {model} without naming them; its "
            "checks report no pass for this run"
        )

    def audit_blocked(self, token: int) -> bool:
        """The failure `token` stopped its batch (blocking); False if it was never recorded."""
        with self._lock:
            found = self._failure_tokens.get(token)
            if found is None:
                return False
            model, index = found
            record = self._record(model)
            record.audit_failures[index] = replace(record.audit_failures[index], blocking=True)
            record.audits_blocked = True
            return True

    def failed(self, model: str, error: str) -> None:
        with self._lock:
            self._record(model).error = error
            owner = self.owners.get(model)
            if owner is not None:  # a standalone audit that could not run fails its model's step
                self._record(owner).error = f"Standalone audit {model} failed: {error}"
        self._log(f"SQLMesh model {model} failed: {error}")

    def hook_failed(self, hook: str, exc: BaseException) -> None:
        """One of our hooks raised: recorded, never passed on to SQLMesh."""
        text = f"Reporting hook {hook} failed (SQLMesh carried on): {type(exc).__name__}: {exc}"
        with self._lock:
            self.hook_errors.append(text)
        self._log(text)

    def skipped(self, model: str) -> None:
        with self._lock:
            self._record(model).skipped = True

    def destructive_change(self, model: str, details: str) -> None:
        with self._lock:
            self.destructive_changes[model] = details

    def message(self, text: str) -> None:
        self._log(text)

    @contextmanager
    def separate_records(self) -> Iterator[dict[str, ModelRecord]]:
        """Record into a fresh dict for the duration: audits on unchanged data run after the
        plan or run, and what they find must not rewrite what that plan or run did."""
        with self._lock:
            kept, self.records = self.records, {}
            separate = self.records
        try:
            yield separate
        finally:
            with self._lock:
                self.records = kept

    def failed_models(self) -> set[str]:
        with self._lock:
            return {name for name, r in self.records.items() if r.error is not None}
