"""The filtered list as CSV or JSON, streamed: a server-side cursor feeds chunks of rows
to the response, so memory stays constant however many rows match.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from services.gateway.queries import ExecutionFilter, export_sql

ExportFormat = Literal["csv", "json"]
CHUNK_ROWS = 500  # rows per cursor fetch and per response chunk
FIELDS = (
    "id",
    "camera_id",
    "location",
    "camera_type",
    "workflow_id",
    "status",
    "started_at",
    "stopped_at",
    "captured_at",
    "device_id",
    "model_version",
    "processing_stage",
    "alert_level",
    "has_smoke",
    "has_fire",
    "detection_count",
    "confidence",
    "telegram_sent",
    "extracted_at",
    "stage2_error",
    "retry_count",
    "false_positive",
    "false_positive_reason",
    "false_positive_by",
    "false_positive_at",
)
MEDIA_TYPES: dict[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _csv_lines(rows: list[dict[str, Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(FIELDS)
    for row in rows:
        writer.writerow(["" if row[f] is None else _value(row[f]) for f in FIELDS])
    return buffer.getvalue()


def _json_lines(rows: list[dict[str, Any]], first: bool) -> str:
    # One object per line inside the array: valid JSON, and a reader can count lines.
    items = ",\n".join(
        json.dumps({f: _value(row[f]) for f in FIELDS}, ensure_ascii=False) for row in rows
    )
    return items if first else ",\n" + items


async def stream_rows(
    pool: asyncpg.Pool, filters: ExecutionFilter
) -> AsyncIterator[list[dict[str, Any]]]:
    """Chunks of matching rows, newest first, from a server-side cursor."""
    args: list[Any] = []
    sql = export_sql(filters, FIELDS, args)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(sql, *args)
        while rows := await cursor.fetch(CHUNK_ROWS):
            yield [dict(row.items()) for row in rows]


async def render(
    chunks: AsyncIterator[list[dict[str, Any]]], fmt: ExportFormat
) -> AsyncIterator[str]:
    first = True
    if fmt == "json":
        yield "[\n"
    async for rows in chunks:
        yield _csv_lines(rows, first) if fmt == "csv" else _json_lines(rows, first)
        first = False
    if fmt == "csv" and first:
        yield _csv_lines([], True)  # no rows: still the header
    if fmt == "json":
        yield "\n]\n"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")[:60]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def file_name(filters: ExecutionFilter, fmt: ExportFormat, now: datetime) -> str:
    """Says what was exported and when, e.g.
    `smokesignal_20261128T1000Z-20261129T1000Z_high+critical_cam-sai-cam-07_at-20261129T1012Z.csv`.
    """
    parts = ["smokesignal"]
    if filters.since or filters.until:
        since = _stamp(filters.since) if filters.since else "start"
        until = _stamp(filters.until) if filters.until else "now"
        parts.append(f"{since}-{until}")
    if filters.alert_levels:
        parts.append("+".join(filters.alert_levels))
    if filters.has_smoke is not None:
        parts.append("smoke" if filters.has_smoke else "no-smoke")
    if filters.camera:
        parts.append(f"cam-{_slug(filters.camera)}")
    if filters.location:
        parts.append(f"loc-{_slug(filters.location)}")
    if filters.processing_stage:
        parts.append(filters.processing_stage)
    if filters.false_positive is not None:
        parts.append("false-positives" if filters.false_positive else "no-false-positives")
    if len(parts) == 1:
        parts.append("all")
    parts.append(f"at-{_stamp(now)}")
    return "_".join(parts) + f".{fmt}"
