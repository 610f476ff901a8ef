"""Read-only SQL for the REST API: keyset-paginated listing, one execution, cameras."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.contracts import AlertLevel, ExecutionDetail, ExecutionSummary, ProcessingStage
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


# A camera's frames in time order, keyset on (started_at, id) from an anchor
# execution: executions_camera_time_idx makes a step O(limit). Full details (with the
# detections), so the detail view steps through frames without a request per frame.
_SEQUENCE_SQL = {
    "next": f"""
        SELECT {DETAIL_COLUMNS}
        FROM executions a JOIN executions e
          ON e.camera_id = a.camera_id AND (e.started_at, e.id) > (a.started_at, a.id)
        WHERE a.id = $1 ORDER BY e.started_at, e.id LIMIT $2""",
    "previous": f"""
        SELECT {DETAIL_COLUMNS}
        FROM executions a JOIN executions e
          ON e.camera_id = a.camera_id AND (e.started_at, e.id) < (a.started_at, a.id)
        WHERE a.id = $1 ORDER BY e.started_at DESC, e.id DESC LIMIT $2""",
}


async def camera_sequence(
    pool: asyncpg.Pool, anchor_id: int, direction: str, limit: int
) -> tuple[list[ExecutionDetail], bool]:
    """Up to `limit` frames of the anchor's camera after (or before) it, nearest first.

    The second value tells whether more frames follow in that direction.
    """
    rows = await pool.fetch(_SEQUENCE_SQL[direction], anchor_id, limit + 1)
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
