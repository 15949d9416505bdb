"""After every step: the twins' environments must hold the same rows and intervals, and every
Dagster claim must be true of SQLMesh's state of the Dagster twin. Anything else, unless the step
declared it, is a divergence."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from tests.conformance.claims import Claims
from tests.conformance.state import SQLMeshTruth, TwinState
from tests.conformance.steps import Declared, Step

_SHOWN_ROWS = 3


@dataclass(frozen=True)
class Divergence:
    step: str
    kind: str  # view, intervals, claim
    subject: str  # the view or model
    raw: str  # raw SQLMesh's side; for a claim, SQLMesh's state of the Dagster twin
    dagster: str  # the code location's side; for a claim, what the Dagster run claims
    where: str = ""  # the environment, for intervals

    def __str__(self) -> str:
        left, right = (
            ("SQLMesh state", "Dagster claims")
            if self.kind == "claim"
            else ("raw SQLMesh", "code location")
        )
        return (
            f"[{self.step}] {self.kind}{f' ({self.where})' if self.where else ''} {self.subject}\n"
            f"    {left}: {self.raw}\n    {right}: {self.dagster}"
        )


def _short(rows: list[tuple] | None) -> str:
    if rows is None:
        return "absent"
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    more = f", ... ({len(rows)} rows)" if len(rows) > _SHOWN_ROWS else f" ({len(rows)} rows)"
    return f"[{shown}{more}]"


def compare_views(step: Step, raw: TwinState, dagster: TwinState) -> list[Divergence]:
    """Same views, same rows (sorted contents, not counts); a report shows the rows only one
    side has."""
    found = []
    for view in sorted(set(raw.views) | set(dagster.views)):
        ours, theirs = dagster.views.get(view), raw.views.get(view)
        if ours == theirs:
            continue
        if ours is None or theirs is None:
            found.append(Divergence(step.name, "view", view, _short(theirs), _short(ours)))
            continue
        only_raw = [r for r in theirs if r not in ours]
        only_ours = [r for r in ours if r not in theirs]
        found.append(
            Divergence(
                step.name,
                "view",
                view,
                f"{len(theirs)} rows; only here: {_short(only_raw)}",
                f"{len(ours)} rows; only here: {_short(only_ours)}",
            )
        )
    return found


def compare_intervals(step: Step, raw: TwinState, dagster: TwinState) -> list[Divergence]:
    found = []
    for env in sorted(set(raw.intervals) | set(dagster.intervals)):
        theirs, ours = raw.intervals.get(env, {}), dagster.intervals.get(env, {})
        for model in sorted(set(theirs) | set(ours)):
            if theirs.get(model) != ours.get(model):
                found.append(
                    Divergence(
                        step.name,
                        "intervals",
                        model,
                        _iso(theirs.get(model)),
                        _iso(ours.get(model)),
                        where=env,
                    )
                )
    return found


def _iso(intervals: tuple[tuple[int, int], ...] | None) -> str:
    if intervals is None:
        return "not in the environment"
    return ", ".join(
        f"[{datetime.utcfromtimestamp(a / 1000):%m-%d %H:%M}, "
        f"{datetime.utcfromtimestamp(b / 1000):%m-%d %H:%M})"
        for a, b in intervals
    )


def compare_claims(
    step: Step,
    truth: SQLMeshTruth,
    state: TwinState,
    claims: Claims,
    audits: dict[str, list[str]],
) -> list[Divergence]:
    """Every claim of the Dagster run against SQLMesh's state of the Dagster twin.

    - `evaluated` only for models SQLMesh wrote intervals for in the step, and every such model
      claimed `evaluated`, or its step failed, but not when the environment now records the very
      version SQLMesh wrote for (that model succeeded);
    - a partition record only for a partition inside the intervals SQLMesh wrote in the step;
    - `up_to_date` only for models SQLMesh wrote nothing for and that have nothing due;
    - one check evaluation per audit of every model SQLMesh evaluated, with the outcome SQLMesh's
      own evaluator finds on the data written in the step; at most one for any other model.
    """
    found = []
    written = state.written
    claimed = claims.outcomes

    def diverge(model: str, fact: str, claim: str) -> None:
        found.append(Divergence(step.name, "claim", model, fact, claim))

    for model in sorted(set(written) | set(claimed)):
        outcomes = claimed.get(model, set())
        failed = model in claims.failed_models  # a failed step: its data was not promoted
        if model in written and "evaluated" not in outcomes and not failed:
            diverge(model, f"wrote intervals {_iso(tuple(written[model]))}", _claim(outcomes))
        if model not in written and "evaluated" in outcomes:
            diverge(model, "wrote no interval in this step", "materialization: evaluated")
        promoted = state.identifiers.get(step.environment, {}).get(model)
        if failed and promoted in state.written_ids.get(model, set()):
            diverge(
                model,
                f"wrote intervals {_iso(tuple(written[model]))} for the version "
                f"{step.environment} now records",
                "its step failed",
            )
    for model, windows in sorted(claims.partitions.items()):
        unwritten = [w for w in windows if not _within(w, written.get(model, []))]
        if unwritten:
            diverge(
                model,
                f"wrote {_iso(tuple(written.get(model, [])))}",
                f"partition records for {_iso(tuple(sorted(unwritten)))}",
            )
    up_to_date = sorted(m for m, o in claimed.items() if "up_to_date" in o and m not in written)
    if up_to_date:
        missing = truth.missing_as_of(step.environment, step.at)
        for model in up_to_date:
            if model in missing:
                diverge(model, f"due and missing: {_iso(missing[model])}", "up_to_date")
    found += _compare_checks(step, truth, written, claims, audits)
    return found


def _within(window: tuple[int, int], intervals: list[tuple[int, int]]) -> bool:
    """Whether the window lies inside what SQLMesh wrote (adjacent rows merged)."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return any(start <= window[0] and window[1] <= end for start, end in merged)


def _claim(outcomes: set[str]) -> str:
    return f"materialization: {', '.join(sorted(outcomes))}" if outcomes else "no materialization"


def _compare_checks(
    step: Step,
    truth: SQLMeshTruth,
    written: dict[str, list[tuple[int, int]]],
    claims: Claims,
    audits: dict[str, list[str]],
) -> list[Divergence]:
    found = []
    per_audit: dict[tuple[str, str], list[bool]] = {}
    for check in claims.checks:
        per_audit.setdefault((check.model, check.audit), []).append(check.passed)
    for (model, audit), results in sorted(per_audit.items()):
        if len(results) > 1:
            found.append(
                Divergence(
                    step.name,
                    "claim",
                    model,
                    f"audit {audit} runs once",
                    f"{len(results)} check evaluations",
                )
            )
    for model in sorted(written):
        if not audits.get(model) or model in claims.failed_models:
            continue
        start = min(a for a, _ in written[model])
        end = max(b for _, b in written[model])
        failing = truth.audit_failures(step.environment, model, start, end, step.at)
        for audit in audits[model]:
            results = per_audit.get((model, audit))
            if results is None:
                found.append(
                    Divergence(
                        step.name,
                        "claim",
                        model,
                        f"audit {audit} ran ({failing.get(audit, 0)} failing rows)",
                        "no check evaluation",
                    )
                )
            elif results[0] != (failing.get(audit, 0) == 0):
                found.append(
                    Divergence(
                        step.name,
                        "claim",
                        model,
                        f"audit {audit}: {failing.get(audit, 0)} failing rows",
                        f"check passed={results[0]}",
                    )
                )
    return found


def declared_away(
    divergences: list[Divergence], declarations: tuple[Declared, ...], step: Step | None = None
) -> tuple[list[Divergence], list[Divergence]]:
    """(undeclared, declared): a divergence is declared when a declaration names its kind and
    subject (without the catalog; `*` matches as in a shell pattern)."""
    undeclared, declared = [], []
    for divergence in divergences:
        if any(
            d.kind == divergence.kind and _same(d.name, divergence.subject) for d in declarations
        ):
            declared.append(divergence)
        else:
            undeclared.append(divergence)
    for required in (d for d in declarations if d.required):
        if not any(required.kind == d.kind and _same(required.name, d.subject) for d in declared):
            undeclared.append(
                Divergence(
                    step.name if step else "",
                    required.kind,
                    required.name,
                    "(the declared difference: " + required.reason + ")",
                    "no difference: the code location did the same as raw SQLMesh",
                )
            )
    return undeclared, declared


def _same(declared: str, subject: str) -> bool:
    bare = subject.replace('"', "")
    return fnmatch.fnmatchcase(bare, declared) or fnmatch.fnmatchcase(bare, "*." + declared)
