"""A model's Dagster freshness policy from its SQLMesh cron (ADR 17).

SQLMesh makes a model's next interval due at each tick of its `cron` (in `cron_tz`): between two
ticks the set of due intervals does not change, and a run at or after a tick fills every interval
due by then. So "the last due interval is filled" is "the model was materialized after its last
cron tick", which is what Dagster's cron freshness policy checks: at each deadline tick it wants a
materialization no older than the deadline minus `lower_bound_delta`. The deadline is the model's
cron shifted by a grace period and the lower bound is that grace period, so the window opens at
the model's own cron tick and the model turns stale when the grace period passes unfilled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

import dagster as dg
from croniter import croniter

from mxm_dagster.asset_graph.partitions import dagster_cron
from mxm_dagster.common.switches import switch_from_env
from mxm_dagster.records.specs import ModelSpec

FRESHNESS_ENV = "MXM_SQLMESH_FRESHNESS"

#: How long after its cron tick a model's newly due interval may stay unfilled and still be fresh.
DEFAULT_GRACE = timedelta(hours=1)

#: Kinds SQLMesh never owes a new interval on a cron tick: a seed is filled once (its
#: `missing_intervals` is empty once it has any), embedded and external models have no table.
KINDS_WITHOUT_DUE_INTERVALS = frozenset({"SEED", "EMBEDDED", "EXTERNAL"})

_MINUTES_PER_DAY = 24 * 60
_SAMPLE_START = datetime(2001, 1, 1, tzinfo=UTC)  # a fixed start: the same answer every load


def freshness_from_env() -> bool:
    """MXM_SQLMESH_FRESHNESS: `on` or `off` (the default when unset). Off by default because a
    process that deserializes the asset graph pays Dagster's check of every cron policy (ADR 17)."""
    return switch_from_env(FRESHNESS_ENV)


@lru_cache(maxsize=256)
def smallest_cron_gap(cron: str, ticks: int = 1000) -> timedelta:
    """The shortest time between two consecutive ticks of `cron` in UTC over `ticks` ticks from
    a fixed date: the bound Dagster's cron policy checks `lower_bound_delta` against (it samples
    as many ticks, in UTC, from a year ago). Cached: projects share a handful of crons."""
    it = croniter(cron, _SAMPLE_START)
    previous = it.get_next(datetime)
    smallest: timedelta | None = None
    for _ in range(ticks):
        current = it.get_next(datetime)
        gap = current - previous
        smallest = gap if smallest is None else min(smallest, gap)
        previous = current
    return smallest or timedelta(days=1)


def _expand(field: str, low: int, high: int) -> list[int] | None:
    """The values a minute or hour cron field names (`*`, `5`, `1,2`, `1-5`, `*/15`, `0-30/10`);
    None for anything else (names, `L`, `#`), which `shifted_cron` then leaves alone."""
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            return None
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            if not (a.isdigit() and b.isdigit()):
                return None
            first, last = int(a), int(b)
        elif base.isdigit():
            first = int(base)
            last = high if step_text else first
        else:
            return None
        if step < 1 or not low <= first <= last <= high:
            return None
        values.update(range(first, last + 1, step))
    return sorted(values)


def _field(values: list[int], low: int, high: int) -> str:
    return "*" if values == list(range(low, high + 1)) else ",".join(str(v) for v in values)


def shifted_cron(cron: str, delta: timedelta) -> str | None:
    """A cron whose ticks are `cron`'s ticks plus `delta` (whole minutes), or None when no
    single cron expression says that (ticks at several minutes that carry into different hours,
    or a weekly or monthly cron pushed past midnight)."""
    fields = cron.split()
    if len(fields) != 5 or delta < timedelta(0):
        return None
    minute, hour, day, month, weekday = fields
    minutes = _expand(minute, 0, 59)
    hours = _expand(hour, 0, 23)
    if minutes is None or hours is None:
        return None
    shift = int(delta.total_seconds() // 60)
    ticks = [h * 60 + m + shift for h in hours for m in minutes]
    every_day = day == month == weekday == "*"
    if not every_day and any(t >= _MINUTES_PER_DAY for t in ticks):
        return None
    shifted = {t % _MINUTES_PER_DAY for t in ticks}
    new_hours = sorted({t // 60 for t in shifted})
    new_minutes = sorted({t % 60 for t in shifted})
    if len(new_hours) * len(new_minutes) != len(shifted):
        return None  # not one set of minutes repeated in a set of hours
    return " ".join([_field(new_minutes, 0, 59), _field(new_hours, 0, 23), day, month, weekday])


def cron_freshness_policy(
    model: ModelSpec, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None
) -> dg.FreshnessPolicy | None:
    """Stale when the interval the model's cron made due is still unfilled `grace` after the tick.

    `grace` is cut to whole minutes, at least one (Dagster's minimum) and at most the shortest
    gap between two ticks (Dagster's maximum: a `*/5` cron gets five minutes). When no shifted
    cron exists (see `shifted_cron`), the deadline is the cron itself with a full gap as the
    grace: the interval due at one tick must be filled by the next. None for models SQLMesh owes
    no interval on a tick (seeds, embedded, external), models without a cron, and models whose
    `end` has passed (`now`, default the clock: SQLMesh owes them nothing new).
    """
    if not model.is_model or not model.cron or model.kind in KINDS_WITHOUT_DUE_INTERVALS:
        return None
    now_ms = int((now or datetime.now(tz=UTC)).timestamp() * 1000)
    if model.end_ms is not None and model.end_ms <= now_ms:
        return None
    cron = dagster_cron(model.cron)
    timezone = model.cron_tz or "UTC"
    gap = smallest_cron_gap(cron)
    minutes = int(min(grace, gap).total_seconds() // 60)
    grace = timedelta(minutes=max(1, minutes))
    deadline = shifted_cron(cron, grace)
    if deadline is None:
        deadline, grace = cron, timedelta(minutes=max(1, int(gap.total_seconds() // 60)))
    return _cron_policy(deadline, grace, timezone)


@lru_cache(maxsize=1024)
def _cron_policy(deadline: str, grace: timedelta, timezone: str) -> dg.FreshnessPolicy:
    """One policy object per distinct deadline: Dagster's constructor samples 1,000 cron ticks
    to check `lower_bound_delta` (about 20 ms here), which per model would add seconds to
    every load of a large project. Policies are immutable records, so sharing one is safe."""
    return dg.FreshnessPolicy.cron(
        deadline_cron=deadline, lower_bound_delta=grace, timezone=timezone
    )
