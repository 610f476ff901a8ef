"""Export: the filtered list as CSV and JSON, streamed in chunks, named after the filter."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.gateway import export
from services.gateway.queries import ExecutionFilter

T0 = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)
ROWS = export.CHUNK_ROWS * 2 + 7  # several cursor chunks and a partial one


@pytest.fixture
async def many(db_pool: asyncpg.Pool) -> None:
    await db_pool.executemany(
        "INSERT INTO executions (id, workflow_id, camera_id, location, status, started_at,"
        " processing_stage, alert_level, has_smoke, confidence, detection_count)"
        " VALUES ($1, 'wf', $2, $3, 'success', $4, 'stage2', $5, $6, $7, $8)",
        [
            (
                i,
                f"cam-{i % 3}",
                'Cerro "Azul", norte' if i % 3 == 0 else None,
                T0 + timedelta(seconds=i),
                "high" if i % 2 else "none",
                bool(i % 2),
                0.875 if i % 2 else None,
                i % 4,
            )
            for i in range(1, ROWS + 1)
        ],
    )


def filename(response: httpx.Response) -> str:
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    return disposition.split("filename=")[1].strip('"')


@pytest.mark.usefixtures("many")
async def test_csv_export_has_every_filtered_row_newest_first(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/export", params={"format": "csv", "alert_level": "high"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    expected = [i for i in range(ROWS, 0, -1) if i % 2]
    assert [int(row["id"]) for row in rows] == expected
    first = rows[0]
    assert first["alert_level"] == "high"
    assert first["confidence"] == "0.875"
    assert first["has_smoke"] == "True"
    assert first["started_at"] == (T0 + timedelta(seconds=expected[0])).isoformat()
    quoted = next(row for row in rows if int(row["id"]) % 3 == 0)
    assert quoted["location"] == 'Cerro "Azul", norte'  # quoting survives the round trip
    name = filename(response)
    assert name.startswith("smokesignal_high_at-") and name.endswith(".csv")


@pytest.mark.usefixtures("many")
async def test_json_export_is_one_valid_array(http: httpx.AsyncClient) -> None:
    since = (T0 + timedelta(seconds=100)).isoformat()
    until = (T0 + timedelta(seconds=700)).isoformat()
    response = await http.get(
        "/api/export",
        params={"format": "json", "since": since, "until": until, "camera": "cam-1"},
    )
    assert response.headers["content-type"].startswith("application/json")
    items = json.loads(response.text)
    assert [item["id"] for item in items] == [i for i in range(699, 99, -1) if i % 3 == 1]
    assert set(items[0]) == set(export.FIELDS)
    # One object per line between "[" and "]": the page counts lines for its progress bar.
    assert response.text.count("\n") == len(items) + 2
    assert filename(response).startswith("smokesignal_20250801T1201Z-20250801T1211Z_cam-cam-1_at-")


async def test_an_empty_export_is_still_a_valid_file(http: httpx.AsyncClient) -> None:
    csv_text = (await http.get("/api/export", params={"format": "csv"})).text
    assert csv_text == ",".join(export.FIELDS) + "\n"
    assert json.loads((await http.get("/api/export", params={"format": "json"})).text) == []
    bad = await http.get("/api/export", params={"format": "xlsx"})
    assert bad.status_code == 422


def test_file_name_says_the_filter_and_the_time() -> None:
    now = datetime(2026, 11, 29, 10, 12, 30, tzinfo=UTC)
    f = ExecutionFilter(
        since=datetime(2026, 11, 28, 10, tzinfo=UTC),
        alert_levels=("high", "critical"),
        has_smoke=True,
        location="Cerro Azul / Norte",
        processing_stage="stage2",
    )
    assert export.file_name(f, "json", now) == (
        "smokesignal_20261128T1000Z-now_high+critical_smoke_loc-Cerro-Azul-Norte_stage2"
        "_at-20261129T1012Z.json"
    )
    assert export.file_name(ExecutionFilter(), "csv", now) == (
        "smokesignal_all_at-20261129T1012Z.csv"
    )
