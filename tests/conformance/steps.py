"""A scenario step: one change applied to both twins, then one run of each at a fixed time.

Times are a simulated calendar (never the wall clock): every step names SQLMesh's execution time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

#: Monday; every fixture model starts a week or more before it.
CALENDAR_START = datetime(2026, 11, 2, 7, 0)

Change = Callable[[Path], None]


@dataclass(frozen=True)
class Declared:
    """A difference the code location makes on purpose in one step, and why (e.g. failure
    isolation promotes the models that succeeded, which raw SQLMesh's failed plan does not).

    `kind` is what may differ: "view" (its rows, or whether it exists), "intervals" (a model's
    recorded intervals), or "claim" (a Dagster claim about a model); `name` is the view or model
    as the divergence report names it. A `required` difference that does not show is itself a
    divergence (the code location did not do what it does on purpose).
    """

    kind: Literal["view", "intervals", "claim"]
    name: str
    reason: str
    #: the difference must show: e.g. failure isolation must have promoted the good models
    required: bool = False


@dataclass(frozen=True)
class Step:
    """What both twins do in one step.

    `changes` edit each twin's folder or warehouse (the same functions for both); then the raw
    twin runs SQLMesh's Python API (`plan` with `run=True`, or `run`) and the Dagster twin one
    Dagster run of the code location. `select` are SQLMesh model names (empty: everything);
    `window` is a restated range as Dagster daily partition keys (first, last), which the raw
    twin restates as start/end.
    """

    name: str
    at: datetime
    changes: tuple[Change, ...] = ()
    command: Literal["plan", "run"] = "plan"
    select: tuple[str, ...] = ()
    restate: bool = False
    window: tuple[str, str] | None = None
    environment: str = "prod"
    partitions: bool = False
    cli: bool = False
    declared: tuple[Declared, ...] = field(default_factory=tuple)

    @property
    def execution_time(self) -> str:
        return self.at.strftime("%Y-%m-%d %H:%M:%S")

    def window_bounds(self) -> tuple[datetime, datetime] | None:
        """[start, end) of the restated range, as the code location hands it to SQLMesh."""
        if self.window is None:
            return None
        first, last = self.window
        return datetime.fromisoformat(first), datetime.fromisoformat(last) + timedelta(days=1)


def day(offset: int, hour: int = 7, minute: int = 0) -> datetime:
    """A time on the simulated calendar: `offset` days after its first Monday."""
    start = CALENDAR_START.replace(hour=0)
    return start + timedelta(days=offset, hours=hour, minutes=minute)


def edit(relative: str, old: str, new: str) -> Change:
    """Replace text in a project file (must be there: an edit that misses is a broken test)."""

    def change(folder: Path) -> None:
        path = folder / relative
        text = path.read_text()
        if old not in text:
            raise AssertionError(f"{relative} has no {old!r}")
        path.write_text(text.replace(old, new, 1))

    return change


def write(relative: str, text: str) -> Change:
    def change(folder: Path) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return change


def remove(relative: str) -> Change:
    def change(folder: Path) -> None:
        (folder / relative).unlink()

    return change
