"""Statistics over the filtered executions, read from the hourly roll-ups.

Migration 0030 keeps `execution_stats_hourly` + `execution_stats_delta` exact by trigger.
A range [since, until) is read as: whole UTC hours from the roll-ups (a range scan of a
small table), plus the partial hours at either end straight from `executions` (at most
two hours, by the started_at index). So every figure is exact for any range, and the
cost grows with hours times groups, not with executions.
"""

from __future__ import annotations

import asyncio
import logging
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from services.gateway.queries import ExecutionFilter

Interval = Literal["hour", "day", "week"]
RankBy = Literal["camera", "location"]
log = logging.getLogger(__name__)
ALERT_LEVELS = ("none", "low", "medium", "high", "critical")

_COLUMNS = """bucket, camera_id, location, processing_stage, alert_level, has_smoke,
    false_positive, executions, detections, confidence_sum, confidence_n"""
# An execution's row in the roll-ups' shape (for the partial hours at the ends).
_LIVE_COLUMNS = """date_trunc('hour', e.started_at, 'UTC') AS bucket, e.camera_id,
    e.location, e.processing_stage, e.alert_level, e.has_smoke, e.false_positive,
    1::bigint AS executions, coalesce(e.detection_count, 0)::bigint AS detections,
    coalesce(round(e.confidence * 1000000)::bigint, 0) AS confidence_sum,
    (e.confidence IS NOT NULL)::int::bigint AS confidence_n"""

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
UTC_NAMES = {"UTC", "ETC/UTC", "GMT", "ETC/GMT", "UCT", "ZULU"}


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def _floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(moment: datetime) -> datetime:
    floor = _floor_day(moment)
    return floor if floor == moment else floor + DAY


Span = tuple[datetime | None, datetime | None]  # [start, end); None = open


def _table_sql(table: str, span: Span, args: list[Any]) -> str:
    bounds: list[str] = []
    if span[0] is not None:
        args.append(span[0])
        bounds.append(f"bucket >= ${len(args)}")
    if span[1] is not None:
        args.append(span[1])
        bounds.append(f"bucket < ${len(args)}")
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    return f"SELECT {_COLUMNS} FROM {table}{where}"


def _is_empty(span: Span) -> bool:
    return span[0] is not None and span[1] is not None and span[0] >= span[1]


def facts_sql(
    filters: ExecutionFilter, args: list[Any], *, daily: bool = True, per_camera: bool = False
) -> str:
    """A relation `e` of roll-up-shaped rows covering exactly the filtered executions.

    Tiers, outermost first: partial hours at the range's ends from `executions`; whole
    hours from the hourly table (and every pending delta); whole UTC days from the daily
    table when `daily` (callers that group by hour, or by days of another time zone,
    pass False). Whole hours come from the tier without cameras unless the filters name
    a camera or location or the caller groups by them (`per_camera`).
    """
    dims = filters.where(args, times=False)
    hourly_table = (
        "execution_stats_hourly"
        if per_camera or filters.camera is not None or filters.location is not None
        else "execution_stats_hourly_global"
    )
    since, until = filters.since, filters.until
    low = _ceil_hour(since) if since is not None else None
    high = _floor_hour(until) if until is not None else None
    parts: list[str] = []
    if _is_empty((low, high)):  # within one or two partial hours: read it all live
        live: list[Span] = [(since, until)]
    else:
        live = [(since, low), (high, until)]
        hours: list[Span] = [(low, high)]
        if daily:
            day_low = _ceil_day(low) if low is not None else None
            day_high = _floor_day(high) if high is not None else None
            if not _is_empty((day_low, day_high)):
                parts.append(_table_sql("execution_stats_daily", (day_low, day_high), args))
                # An open side of the range is all days: no hours on that side.
                hours = []
                if low is not None:
                    hours.append((low, day_low))
                if high is not None:
                    hours.append((day_high, high))
        for span in hours:
            if not _is_empty(span):
                parts.append(_table_sql(hourly_table, span, args))
        parts.append(_table_sql("execution_stats_delta", (low, high), args))
    for start, end in live:
        if start is None or end is None or start >= end:
            continue
        args.extend((start, end))
        parts.append(
            f"SELECT {_LIVE_COLUMNS} FROM executions e "
            f"WHERE e.started_at >= ${len(args) - 1} AND e.started_at < ${len(args)}"
        )
    union = " UNION ALL ".join(parts)
    where_dims = f"WHERE {' AND '.join(dims)}" if dims else ""
    return f"(SELECT * FROM ({union}) u) e {where_dims}"


_MEASURES = """sum(e.executions)::bigint AS executions,
    coalesce(sum(e.executions) FILTER (WHERE e.has_smoke), 0)::bigint AS smoke,
    coalesce(sum(e.executions) FILTER (WHERE e.false_positive), 0)::bigint AS false_positives,
    sum(e.detections)::bigint AS detections,
    sum(e.confidence_sum) AS confidence_sum, sum(e.confidence_n)::bigint AS confidence_n"""


def _level_measures() -> str:
    parts = [
        f"coalesce(sum(e.executions) FILTER (WHERE e.processing_stage = 'stage2' "
        f"AND e.alert_level = '{level}'), 0)::bigint AS level_{level}"
        for level in ALERT_LEVELS
    ]
    parts.append(
        "coalesce(sum(e.executions) FILTER (WHERE e.processing_stage = 'stage1'), 0)::bigint "
        "AS pending"
    )
    parts.append(
        "coalesce(sum(e.executions) FILTER (WHERE e.processing_stage = 'failed'), 0)::bigint "
        "AS failed"
    )
    return ",\n    ".join(parts)


@dataclass(frozen=True, slots=True)
class Totals:
    executions: int
    smoke: int
    false_positives: int
    detections: int
    average_confidence: float | None
    by_level: dict[str, int]
    pending: int
    failed: int


def _totals(row: asyncpg.Record) -> Totals:
    n = row["confidence_n"] or 0
    return Totals(
        executions=row["executions"] or 0,
        smoke=row["smoke"] or 0,
        false_positives=row["false_positives"] or 0,
        detections=row["detections"] or 0,
        # confidence sums are in millionths (migration 0033)
        average_confidence=float(row["confidence_sum"]) / 1e6 / n if n else None,
        by_level={level: row[f"level_{level}"] or 0 for level in ALERT_LEVELS},
        pending=row["pending"] or 0,
        failed=row["failed"] or 0,
    )


async def count(pool: asyncpg.Pool, filters: ExecutionFilter) -> int:
    args: list[Any] = []
    value = await pool.fetchval(
        f"SELECT coalesce(sum(e.executions), 0)::bigint FROM {facts_sql(filters, args)}", *args
    )
    return int(value)


async def summary(pool: asyncpg.Pool, filters: ExecutionFilter) -> Totals:
    args: list[Any] = []
    row = await pool.fetchrow(
        f"SELECT {_MEASURES}, {_level_measures()} FROM {facts_sql(filters, args)}", *args
    )
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return _totals(row)


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    totals: Totals


async def timeseries(
    pool: asyncpg.Pool, filters: ExecutionFilter, interval: Interval, tz: str
) -> list[Bucket]:
    """Per hour/day/week (days and weeks in time zone `tz`); empty buckets left out."""
    args: list[Any] = []
    daily = interval != "hour" and tz.upper() in UTC_NAMES
    facts = facts_sql(filters, args, daily=daily)
    args.append(tz)
    rows = await pool.fetch(
        f"""SELECT date_trunc('{interval}', e.bucket, ${len(args)}) AS start,
                   {_MEASURES}, {_level_measures()}
            FROM {facts} GROUP BY 1 HAVING sum(e.executions) > 0 ORDER BY 1""",
        *args,
    )
    return [Bucket(start=row["start"], totals=_totals(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class Ranked:
    key: str | None
    totals: Totals


RANK_COLUMNS: dict[RankBy, str] = {"camera": "e.camera_id", "location": "e.location"}
# The measure a ranking orders by, as an aggregate (HAVING cannot use output names).
RANK_MEASURES = {
    "smoke": "sum(e.executions) FILTER (WHERE e.has_smoke)",
    "false_positives": "sum(e.executions) FILTER (WHERE e.false_positive)",
    "executions": "sum(e.executions)",
}


async def ranking(
    pool: asyncpg.Pool, filters: ExecutionFilter, by: RankBy, order: str, limit: int
) -> list[Ranked]:
    """Cameras or locations with the most smoke detections (or false positives)."""
    args: list[Any] = []
    facts = facts_sql(filters, args, per_camera=True)
    column, measure = RANK_COLUMNS[by], RANK_MEASURES[order]
    args.append(limit)
    rows = await pool.fetch(
        f"""SELECT {column} AS key, {_MEASURES}, {_level_measures()}
            FROM {facts} GROUP BY 1 HAVING coalesce({measure}, 0) > 0
            ORDER BY {measure} DESC, executions DESC, key NULLS LAST LIMIT ${len(args)}""",
        *args,
    )
    return [Ranked(key=row["key"], totals=_totals(row)) for row in rows]


def valid_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def compact(pool: asyncpg.Pool) -> int:
    """Fold pending deltas into the hourly table (one compactor at a time)."""
    return int(await pool.fetchval("SELECT execution_stats_compact()"))


COMPACT_INTERVAL_S = 2.0  # deltas pile up ~2 per Stage 2 completion; reads sum them anyway


async def compact_periodically(pool: asyncpg.Pool, interval_s: float = COMPACT_INTERVAL_S) -> None:
    """The gateway's background fold of statistics deltas; a failure is logged and retried."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            folded = await compact(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("statistics compaction failed", extra={"error": repr(exc)})
            continue
        if folded:
            log.debug("statistics deltas folded", extra={"rows": folded})


async def locations(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        """SELECT location FROM execution_stats_daily WHERE location IS NOT NULL
           UNION SELECT location FROM execution_stats_delta WHERE location IS NOT NULL
           ORDER BY 1"""
    )
    return [row["location"] for row in rows]
