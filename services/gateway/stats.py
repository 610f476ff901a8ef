"""Statistics over the filtered executions, read from the hourly roll-ups.

Migration 0030 keeps `execution_stats_hourly` + `execution_stats_delta` exact by trigger.
A range [since, until) is read as: whole UTC hours from the roll-ups (a range scan of a
small table), plus the partial hours at either end straight from `executions` (at most
two hours, by the started_at index). So every figure is exact for any range, and the
cost grows with hours times groups, not with executions. The SQL, including the choice
of tiers (`facts_sql`), is in queries.py; this module runs it and shapes the rows.
"""

from __future__ import annotations

import asyncio
import logging
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from services.gateway import queries
from services.gateway.queries import ExecutionFilter, facts_sql
from shared.contracts import ALERT_LEVELS

Interval = Literal["hour", "day", "week"]
RankBy = Literal["camera", "location"]
log = logging.getLogger(__name__)

UTC_NAMES = {"UTC", "ETC/UTC", "GMT", "ETC/GMT", "UCT", "ZULU"}


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
    value = await pool.fetchval(queries.stats_count_sql(facts_sql(filters, args)), *args)
    return int(value)


async def summary(pool: asyncpg.Pool, filters: ExecutionFilter) -> Totals:
    args: list[Any] = []
    row = await pool.fetchrow(queries.stats_summary_sql(facts_sql(filters, args)), *args)
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
    rows = await pool.fetch(queries.stats_timeseries_sql(facts, interval, f"${len(args)}"), *args)
    return [Bucket(start=row["start"], totals=_totals(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class Ranked:
    key: str | None
    totals: Totals


async def ranking(
    pool: asyncpg.Pool, filters: ExecutionFilter, by: RankBy, order: str, limit: int
) -> list[Ranked]:
    """Cameras or locations with the most smoke detections (or false positives)."""
    args: list[Any] = []
    facts = facts_sql(filters, args, per_camera=True)
    args.append(limit)
    rows = await pool.fetch(queries.stats_ranking_sql(facts, by, order, f"${len(args)}"), *args)
    return [Ranked(key=row["key"], totals=_totals(row)) for row in rows]


def valid_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def compact(pool: asyncpg.Pool) -> int:
    """Fold pending deltas into the hourly table (one compactor at a time)."""
    return int(await pool.fetchval(queries.STATS_COMPACT_SQL))


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
    rows = await pool.fetch(queries.STATS_LOCATIONS_SQL)
    return [row["location"] for row in rows]
