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

    evaluated_batches: int = 0
    intervals: list[tuple[int, int]] = field(default_factory=list)
    duration_ms: int = 0
    audits_run: int = 0
    audit_failures: list[AuditOutcome] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False


class OutcomeRecorder:
    """Thread-safe collector of per-model evaluation events."""

    def __init__(self, log: LogFn | None = None) -> None:
        self._lock = threading.Lock()
        self._log = log or (lambda _msg: None)
        self.records: dict[str, ModelRecord] = {}

    def _record(self, model: str) -> ModelRecord:
        return self.records.setdefault(model, ModelRecord())

    def evaluated(
        self,
        model: str,
        interval: tuple[int, int],
        duration_ms: int | None,
        audits_passed: int,
        audits_failed: int,
    ) -> None:
        with self._lock:
            record = self._record(model)
            if duration_ms is None:  # SQLMesh reports a failed batch with no duration
                return
            record.evaluated_batches += 1
            record.intervals.append(interval)
            record.duration_ms += duration_ms
            record.audits_run += audits_passed + audits_failed
        self._log(f"SQLMesh evaluated {model} in {duration_ms} ms ({audits_failed} audits failed)")

    def audit_failed(self, model: str, audit: AuditOutcome) -> None:
        with self._lock:
            self._record(model).audit_failures.append(audit)
        severity = "blocking" if audit.blocking else "non-blocking"
        self._log(
            f"SQLMesh audit {audit.name} on {model} failed ({severity}): {audit.failed_rows} rows"
        )

    def failed(self, model: str, error: str) -> None:
        with self._lock:
            self._record(model).error = error
        self._log(f"SQLMesh model {model} failed: {error}")

    def skipped(self, model: str) -> None:
        with self._lock:
            self._record(model).skipped = True
        self._log(f"SQLMesh skipped {model}: an upstream model failed")

    def message(self, text: str) -> None:
        self._log(text)

    def failed_models(self) -> set[str]:
        with self._lock:
            return {name for name, r in self.records.items() if r.error is not None}
