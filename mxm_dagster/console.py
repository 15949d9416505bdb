"""Records what SQLMesh reports about each model while it evaluates.

SQLMesh calls its console from worker threads (one per concurrent task), so every method takes a
lock. The SQLMesh-facing console class lives in `sqlmesh_api`; it forwards into this recorder, which
knows nothing about SQLMesh objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mxm_dagster.results import AuditOutcome

LogFn = Callable[[str], None]


@dataclass
class ModelRecord:
    """What one execution observed for one model, across all of its interval batches."""

    expected_batches: int = 0
    evaluated_batches: int = 0
    failed_batches: int = 0
    intervals: list[tuple[int, int]] = field(default_factory=list)
    duration_ms: int = 0
    audits_run: int = 0
    audit_failures: list[AuditOutcome] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False
    table: dict[str, str] = field(default_factory=dict)  # version, fingerprint, table, view

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
    ) -> None:
        self._lock = threading.Lock()
        self._log = log or (lambda _msg: None)
        self.on_complete = on_complete
        self.records: dict[str, ModelRecord] = {}
        self.destructive_changes: dict[str, str] = {}  # model -> what SQLMesh would drop

    def _record(self, model: str) -> ModelRecord:
        return self.records.setdefault(model, ModelRecord())

    def batches_planned(self, batches: dict[str, int]) -> None:
        with self._lock:
            for model, count in batches.items():
                self._record(model).expected_batches = count

    def evaluated(
        self,
        model: str,
        interval: tuple[int, int],
        duration_ms: int | None,
        audits_passed: int,
        audits_failed: int,
        table: Callable[[], dict[str, str]],
    ) -> None:
        with self._lock:
            record = self._record(model)
            if duration_ms is None:  # SQLMesh reports a failed batch with no duration
                record.failed_batches += 1
                return
            record.evaluated_batches += 1
            record.intervals.append(interval)
            record.duration_ms += duration_ms
            record.audits_run += audits_passed + audits_failed
            if not record.table:
                record.table = table()
            complete = record.complete
        if complete and self.on_complete is not None:
            try:
                self.on_complete(model, record)
            except Exception as exc:  # reporting early must never break SQLMesh's evaluation
                self._log(f"Could not report {model} early: {exc}")

    def audit_failed(self, model: str, audit: AuditOutcome) -> None:
        with self._lock:
            self._record(model).audit_failures.append(audit)
        kind = "blocking" if audit.blocking else "non-blocking"
        self._log(
            f"SQLMesh audit {audit.name} on {model} failed ({kind}): {audit.failed_rows} rows"
        )

    def failed(self, model: str, error: str) -> None:
        with self._lock:
            self._record(model).error = error
        self._log(f"SQLMesh model {model} failed: {error}")

    def skipped(self, model: str) -> None:
        with self._lock:
            self._record(model).skipped = True

    def destructive_change(self, model: str, details: str) -> None:
        with self._lock:
            self.destructive_changes[model] = details

    def message(self, text: str) -> None:
        self._log(text)

    def failed_models(self) -> set[str]:
        with self._lock:
            return {name for name, r in self.records.items() if r.error is not None}
