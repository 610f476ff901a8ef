"""Every SQL statement of the gateway (issue 18: one module of SQL per service).

Sections: the REST API's reads (keyset-paginated listing, one execution, cameras, a
camera's frames, open alerts), the export cursor, the statistics roll-ups, the
operator triage writes and the sign-in sessions. The modules that run them
(stats.py, export.py, triage.py, auth/sessions.py) keep their logic and name them.
`tests/shared/test_sql_home.py` fails on a statement written anywhere else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from shared.contracts import (
    ALERT_LEVELS,
    AlertLevel,
    ExecutionDetail,
    ExecutionSummary,
    ProcessingStage,
)
from shared.executions import DETAIL_COLUMNS, SUMMARY_COLUMNS, detail_from_row, summary_from_row


class CursorError(ValueError):
    """A pagination cursor that this API did not issue."""


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before_id": last_id}).encode()).decode()


# What encode_cursor issues is ~50 characters; anything much longer is not ours,
# and is refused before it is decoded (a deeply nested JSON made json.loads recurse).
MAX_CURSOR_CHARS = 200


def decode_cursor(cursor: str) -> int:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise CursorError("invalid cursor: pass next_cursor from a previous page")
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        before_id = payload["before_id"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError, RecursionError):
        raise CursorError("invalid cursor: pass next_cursor from a previous page") from None
    # executions.id is a BIGINT: anything outside 1..2**63-1 would overflow the driver (500).
    if not isinstance(before_id, int) or isinstance(before_id, bool) or not 1 <= before_id < 2**63:
        raise CursorError("invalid cursor: pass next_cursor from a previous page")
    return before_id


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    has_smoke: bool | None = None
    alert_levels: tuple[AlertLevel, ...] = ()  # any of these; empty = no condition
    camera: str | None = None
    location: str | None = None
    since: datetime | None = None  # started_at >= since
    until: datetime | None = None  # started_at < until
    processing_stage: ProcessingStage | None = None
    false_positive: bool | None = None  # True: only false positives; False: hide them

    def where(self, args: list[Any], *, times: bool = True) -> list[str]:
        """SQL conditions (alias e), appending their parameters to `args`.

        `times=False` leaves out since/until: the statistics roll-ups share every other
        column name with `executions` and apply the time range themselves.
        """
        conditions: list[str] = []

        def add(sql: str, value: Any) -> None:
            args.append(value)
            conditions.append(sql.format(f"${len(args)}"))

        if self.has_smoke is not None:
            add("e.has_smoke = {}", self.has_smoke)
        if len(self.alert_levels) == 1:
            add("e.alert_level = {}", self.alert_levels[0])
        elif self.alert_levels:
            add("e.alert_level = ANY({}::text[])", list(self.alert_levels))
        if self.camera is not None:
            add("e.camera_id = {}", self.camera)
        if self.location is not None:
            add("e.location = {}", self.location)
        if times and self.since is not None:
            add("e.started_at >= {}", self.since)
        if times and self.until is not None:
            add("e.started_at < {}", self.until)
        if self.processing_stage is not None:
            add("e.processing_stage = {}", self.processing_stage)
        if self.false_positive is True:
            conditions.append("e.false_positive")  # executions_false_positive_idx
        elif self.false_positive is False:
            conditions.append("NOT e.false_positive")
        return conditions


@dataclass(frozen=True, slots=True)
class Page:
    items: list[ExecutionSummary]
    next_cursor: str | None


async def list_executions(
    pool: asyncpg.Pool, filters: ExecutionFilter, *, limit: int, before_id: int | None
) -> Page:
    """Newest first by id; one row more than asked tells whether a next page exists."""
    args: list[Any] = []
    conditions = filters.where(args)
    if before_id is not None:
        args.append(before_id)
        conditions.append(f"e.id < ${len(args)}")
    args.append(limit + 1)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await pool.fetch(
        f"SELECT {SUMMARY_COLUMNS} FROM executions e {where} ORDER BY e.id DESC LIMIT ${len(args)}",
        *args,
    )
    items = [summary_from_row(dict(row.items())) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page(items, next_cursor)


async def get_execution(pool: asyncpg.Pool, execution_id: int) -> ExecutionDetail | None:
    row = await pool.fetchrow(
        f"SELECT {DETAIL_COLUMNS} FROM executions e WHERE e.id = $1", execution_id
    )
    return None if row is None else detail_from_row(dict(row.items()))


@dataclass(frozen=True, slots=True)
class ImagePaths:
    """Paths relative to the image directory, as Stage 2 stored them."""

    image: str | None
    thumbnail: str | None
    webp: str | None = None


async def get_image_paths(pool: asyncpg.Pool, execution_id: int) -> ImagePaths | None:
    row = await pool.fetchrow(
        "SELECT image_path, thumbnail_path, webp_path FROM executions WHERE id = $1", execution_id
    )
    if row is None:
        return None
    return ImagePaths(row["image_path"], row["thumbnail_path"], row["webp_path"])


async def list_cameras(pool: asyncpg.Pool) -> list[str]:
    """Distinct camera ids by a loose index scan: O(cameras · log n), not O(executions)."""
    rows = await pool.fetch(
        """
        WITH RECURSIVE cameras AS (
            (SELECT camera_id FROM executions ORDER BY camera_id LIMIT 1)
            UNION ALL
            SELECT (SELECT e.camera_id FROM executions e
                    WHERE e.camera_id > c.camera_id ORDER BY e.camera_id LIMIT 1)
            FROM cameras c WHERE c.camera_id IS NOT NULL
        )
        SELECT camera_id FROM cameras WHERE camera_id IS NOT NULL
        """
    )
    return [row["camera_id"] for row in rows]


# A camera's frames in capture order: when the camera took the frame, else (a source
# without it) when the run started. Written as in migration 0090's index
# executions_camera_capture_idx, which only serves a query with this very expression.
_SEQUENCE_KEY = "coalesce({0}.captured_at, {0}.started_at)"
_E_KEY, _A_KEY = _SEQUENCE_KEY.format("e"), _SEQUENCE_KEY.format("a")

# Keyset on (key, id) from an anchor execution. The anchor's values come from
# InitPlans, so the page is one ordered index scan that stops after LIMIT rows: O(limit).
# (Joined to the anchor instead, the planner can't use the index's order and sorted
# all of the camera's frames after it: O(frames) per step.) Full details (with the
# detections), so the detail view steps without a request per frame.
_SEQUENCE_ANCHOR = f"""
    WITH a AS (SELECT camera_id, {_A_KEY} AS key, id FROM executions a WHERE id = $1)
    SELECT {DETAIL_COLUMNS} FROM executions e
    WHERE e.camera_id = (SELECT camera_id FROM a)
      AND ({_E_KEY}, e.id) {{}} ((SELECT key FROM a), (SELECT id FROM a))"""
SEQUENCE_SQL = {
    "next": _SEQUENCE_ANCHOR.format(">") + f" ORDER BY {_E_KEY}, e.id LIMIT $2",
    "previous": _SEQUENCE_ANCHOR.format("<") + f" ORDER BY {_E_KEY} DESC, e.id DESC LIMIT $2",
}


async def camera_sequence(
    pool: asyncpg.Pool, anchor_id: int, direction: str, limit: int
) -> tuple[list[ExecutionDetail], bool]:
    """Up to `limit` frames of the anchor's camera after (or before) it, nearest first.

    The second value tells whether more frames follow in that direction.
    """
    rows = await pool.fetch(SEQUENCE_SQL[direction], anchor_id, limit + 1)
    items = [detail_from_row(dict(row.items())) for row in rows[:limit]]
    return items, len(rows) > limit


async def open_alerts(
    pool: asyncpg.Pool, since: datetime | None, limit: int
) -> list[ExecutionSummary]:
    """Unacknowledged high/critical results that are not false positives, newest first."""
    rows = await pool.fetch(
        f"""SELECT {SUMMARY_COLUMNS} FROM executions e
            WHERE e.alert_level IN ('high', 'critical') AND e.acknowledged_at IS NULL
              AND NOT e.false_positive AND ($1::timestamptz IS NULL OR e.started_at >= $1)
            ORDER BY e.id DESC LIMIT $2""",
        since,
        limit,
    )
    return [summary_from_row(dict(row.items())) for row in rows]


async def execution_exists(pool: asyncpg.Pool, execution_id: int) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM executions WHERE id = $1", execution_id))


# -- The event stream (consumer.py) ----------------------------------------------
# The claim of one dead-letter copy: only the reader whose insert returns a row copies.
# Old claims go in the same (rare) transaction: a claim only has to outlive the
# moment every live reader has passed its offset.
CLAIM_DEAD_LETTER_SQL = """
    WITH expired AS (
        DELETE FROM stream_dead_letters WHERE recorded_at < now() - interval '7 days'
    )
    INSERT INTO stream_dead_letters
        (stream, stream_offset, tag, routing_key, message_id, reason, reader)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT DO NOTHING
    RETURNING true
"""


# -- Export (export.py) ---------------------------------------------------------


def export_sql(filters: ExecutionFilter, fields: Sequence[str], args: list[Any]) -> str:
    """Every matching row, newest first (for a server-side cursor); appends to `args`."""
    conditions = filters.where(args)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    columns = ", ".join(f"e.{field}" for field in fields)
    return f"SELECT {columns} FROM executions e {where} ORDER BY e.id DESC"


# -- Statistics (stats.py) --------------------------------------------------------
# Migration 0030 keeps `execution_stats_hourly` + `execution_stats_delta` exact by
# trigger; facts_sql reads a range from the cheapest tiers that cover it exactly.

_STATS_COLUMNS = """bucket, camera_id, location, processing_stage, alert_level, has_smoke,
    false_positive, executions, detections, confidence_sum, confidence_n"""
# An execution's row in the roll-ups' shape (for the partial hours at the ends).
_STATS_LIVE_COLUMNS = """date_trunc('hour', e.started_at, 'UTC') AS bucket, e.camera_id,
    e.location, e.processing_stage, e.alert_level, e.has_smoke, e.false_positive,
    1::bigint AS executions, coalesce(e.detection_count, 0)::bigint AS detections,
    coalesce(round(e.confidence * 1000000)::bigint, 0) AS confidence_sum,
    (e.confidence IS NOT NULL)::int::bigint AS confidence_n"""

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


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
    return f"SELECT {_STATS_COLUMNS} FROM {table}{where}"


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
            f"SELECT {_STATS_LIVE_COLUMNS} FROM executions e "
            f"WHERE e.started_at >= ${len(args) - 1} AND e.started_at < ${len(args)}"
        )
    union = " UNION ALL ".join(parts)
    where_dims = f"WHERE {' AND '.join(dims)}" if dims else ""
    return f"(SELECT * FROM ({union}) u) e {where_dims}"


_STATS_MEASURES = """sum(e.executions)::bigint AS executions,
    coalesce(sum(e.executions) FILTER (WHERE e.has_smoke), 0)::bigint AS smoke,
    coalesce(sum(e.executions) FILTER (WHERE e.false_positive), 0)::bigint AS false_positives,
    sum(e.detections)::bigint AS detections,
    sum(e.confidence_sum) AS confidence_sum, sum(e.confidence_n)::bigint AS confidence_n"""


def _stats_level_measures() -> str:
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


def stats_count_sql(facts: str) -> str:
    return f"SELECT coalesce(sum(e.executions), 0)::bigint FROM {facts}"


def stats_summary_sql(facts: str) -> str:
    """One row of totals (an aggregate without GROUP BY always returns one)."""
    return f"SELECT {_STATS_MEASURES}, {_stats_level_measures()} FROM {facts}"


def stats_timeseries_sql(facts: str, interval: Literal["hour", "day", "week"], tz: str) -> str:
    """Totals per `interval` in the time zone parameter `tz` (e.g. "$3"); no empty buckets."""
    return f"""SELECT date_trunc('{interval}', e.bucket, {tz}) AS start,
                   {_STATS_MEASURES}, {_stats_level_measures()}
            FROM {facts} GROUP BY 1 HAVING sum(e.executions) > 0 ORDER BY 1"""


STATS_RANK_COLUMNS = {"camera": "e.camera_id", "location": "e.location"}
# The measure a ranking orders by, as an aggregate (HAVING cannot use output names).
STATS_RANK_MEASURES = {
    "smoke": "sum(e.executions) FILTER (WHERE e.has_smoke)",
    "false_positives": "sum(e.executions) FILTER (WHERE e.false_positive)",
    "executions": "sum(e.executions)",
}


def stats_ranking_sql(facts: str, by: str, order: str, limit: str) -> str:
    """Groups by STATS_RANK_COLUMNS[by], ordered by STATS_RANK_MEASURES[order];
    `limit` is its parameter (e.g. "$4")."""
    column, measure = STATS_RANK_COLUMNS[by], STATS_RANK_MEASURES[order]
    return f"""SELECT {column} AS key, {_STATS_MEASURES}, {_stats_level_measures()}
            FROM {facts} GROUP BY 1 HAVING coalesce({measure}, 0) > 0
            ORDER BY {measure} DESC, executions DESC, key NULLS LAST LIMIT {limit}"""


# Fold pending deltas into the hourly table (the function takes its own lock).
STATS_COMPACT_SQL = "SELECT execution_stats_compact()"

STATS_LOCATIONS_SQL = """SELECT location FROM execution_stats_daily WHERE location IS NOT NULL
           UNION SELECT location FROM execution_stats_delta WHERE location IS NOT NULL
           ORDER BY 1"""


# -- Operator triage (triage.py) ------------------------------------------------
# Each action locks its rows in id order (so concurrent bulk requests cannot
# deadlock), changes them and appends one audit row per execution.

TRIAGE_COLUMNS = """
    e.id AS execution_id, e.false_positive, e.false_positive_reason, e.false_positive_by,
    e.false_positive_at, e.acknowledged_by, e.acknowledged_at, e.triage_revision
"""

# $1 ids, $2 mark (bool), $3 reason, $4 actor, $5 action.
FALSE_POSITIVE_SQL = f"""
WITH locked AS (
    SELECT id FROM executions WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
), changed AS (
    UPDATE executions e
    SET false_positive = $2,
        false_positive_reason = CASE WHEN $2 THEN $3::text END,
        false_positive_by = CASE WHEN $2 THEN $4::text END,
        false_positive_at = CASE WHEN $2 THEN now() END,
        triage_revision = e.triage_revision + 1
    FROM locked WHERE e.id = locked.id
    RETURNING {TRIAGE_COLUMNS}
), audit AS (
    INSERT INTO execution_audit (execution_id, action, actor, reason, at)
    SELECT execution_id, $5, $4, $3, now() FROM changed
)
SELECT * FROM changed ORDER BY execution_id
"""

# $1 ids, $2 actor. Only the first acknowledgement counts; others change nothing.
ACKNOWLEDGE_SQL = f"""
WITH locked AS (
    SELECT id FROM executions
    WHERE id = ANY($1::bigint[]) AND acknowledged_at IS NULL
    ORDER BY id FOR UPDATE
), changed AS (
    UPDATE executions e
    SET acknowledged_by = $2, acknowledged_at = now(),
        triage_revision = e.triage_revision + 1
    FROM locked WHERE e.id = locked.id AND e.acknowledged_at IS NULL
    RETURNING {TRIAGE_COLUMNS}
), audit AS (
    INSERT INTO execution_audit (execution_id, action, actor, at)
    SELECT execution_id, 'acknowledge', $2, now() FROM changed
)
SELECT * FROM changed ORDER BY execution_id
"""

# $1 ids: which of them exist.
EXISTING_IDS_SQL = "SELECT id FROM executions WHERE id = ANY($1::bigint[])"

# $1 execution id, $2 limit: newest first.
AUDIT_TRAIL_SQL = """SELECT action, actor, reason, at FROM execution_audit
           WHERE execution_id = $1 ORDER BY at DESC, id DESC LIMIT $2"""


# -- Sign-in sessions (auth/sessions.py) ------------------------------------------
# Expired rows are deleted on sign-in, not by a background task. Ids and states are
# stored as hashes, never as the cookie's or the provider's value.

DELETE_EXPIRED_SESSIONS_SQL = "DELETE FROM auth_sessions WHERE expires_at < now()"

INSERT_SESSION_SQL = (
    "INSERT INTO auth_sessions (id_hash, subject, name, roles, via, csrf_token, expires_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)

LOAD_SESSION_SQL = (
    "SELECT subject, name, roles, via, csrf_token, expires_at FROM auth_sessions"
    " WHERE id_hash = $1 AND expires_at > now()"
)

DELETE_SESSION_SQL = "DELETE FROM auth_sessions WHERE id_hash = $1"

DELETE_EXPIRED_PENDING_LOGINS_SQL = "DELETE FROM auth_pending_logins WHERE expires_at < now()"

# $6 = time to live in seconds.
INSERT_PENDING_LOGIN_SQL = (
    "INSERT INTO auth_pending_logins"
    " (state_hash, code_verifier, nonce, return_to, popup, expires_at)"
    " VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))"
)

# Removed as it is read, so a state cannot be used twice.
TAKE_PENDING_LOGIN_SQL = (
    "DELETE FROM auth_pending_logins WHERE state_hash = $1 AND expires_at > now()"
    " RETURNING code_verifier, nonce, return_to, popup"
)
