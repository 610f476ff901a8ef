from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from services.demo.generator import make_raw_execution
from services.etl.errors import MalformedExecution
from services.etl.stage1.ingest import ingest_execution
from testkit.etl import run_etl_cli


async def test_ingest_stores_metadata_and_raw_payload_and_enqueues_stage2(
    db_pool: asyncpg.Pool,
) -> None:
    raw = make_raw_execution(42, camera="sai-cam-node-07")
    text = json.dumps(raw)
    assert await ingest_execution(db_pool, text) == 42
    row = await db_pool.fetchrow("SELECT * FROM executions WHERE id = 42")
    assert row is not None
    assert row["workflow_id"] == raw["workflow_id"]
    assert row["camera_id"] == "sai-cam-node-07"
    assert row["location"] == "Bosque Peralta Ramos"
    assert row["camera_type"] == "rtsp"
    assert row["status"] == "success"
    assert row["started_at"] == datetime.fromisoformat(raw["started_at"])
    assert row["processing_stage"] == "stage1"
    assert row["extracted_at"] is None
    assert (
        await db_pool.fetchval("SELECT payload FROM execution_raw WHERE execution_id = 42") == text
    )
    assert await db_pool.fetchval("SELECT status FROM stage2_jobs WHERE execution_id = 42") == (
        "pending"
    )


async def test_duplicate_ids_are_idempotent(db_pool: asyncpg.Pool) -> None:
    first = json.dumps(make_raw_execution(5))
    assert await ingest_execution(db_pool, first) == 5
    assert await ingest_execution(db_pool, first.encode()) == 5
    assert await ingest_execution(db_pool, json.dumps(make_raw_execution(5, camera=3))) == 5
    assert await db_pool.fetchval("SELECT count(*) FROM executions") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM stage2_jobs") == 1
    assert await db_pool.fetchval("SELECT payload FROM execution_raw") == first


async def test_ingest_works_on_a_single_connection(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await ingest_execution(conn, json.dumps(make_raw_execution(8))) == 8
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe not utf-8", r"not UTF-8 text"),
        ('{"execution_id": 1', r"Invalid JSON"),
        ('{"execution_id": 1, "workflow_id": "wf"}', r"status: Field required"),
        ('{"bad": "\\u0000"}', r"execution_id: Field required"),
        ("nul \x00 inside", r"NUL character"),
    ],
)
async def test_bad_input_raises_a_clear_error_and_is_recorded(
    db_pool: asyncpg.Pool, raw: str | bytes, message: str
) -> None:
    with pytest.raises(MalformedExecution, match=message):
        await ingest_execution(db_pool, raw, source="test")
    rejected = await db_pool.fetch("SELECT source, error, excerpt FROM rejected_inputs")
    assert len(rejected) == 1
    assert rejected[0]["source"] == "test"
    assert rejected[0]["error"].startswith("malformed raw execution")
    assert rejected[0]["excerpt"]
    assert await db_pool.fetchval("SELECT count(*) FROM executions") == 0


async def test_cli_ingests_good_files_and_reports_each_bad_one(
    tmp_path: Path, service_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    good = [tmp_path / "a.json", tmp_path / "c.json"]
    good[0].write_text(json.dumps(make_raw_execution(11)))
    good[1].write_text(json.dumps(make_raw_execution(12)))
    broken = tmp_path / "b.json"
    bad_raw = make_raw_execution(13)
    del bad_raw["metadata"]["camera_type"]
    broken.write_text(json.dumps(bad_raw))
    missing = tmp_path / "missing.json"
    result = run_etl_cli(
        ["ingest", str(good[0]), str(broken), str(missing), str(good[1])], service_env
    )
    assert result.returncode == 1
    assert f"ingested execution 11 from {good[0]}" in result.stdout
    assert f"ingested execution 12 from {good[1]}" in result.stdout
    assert f"error: {broken}: malformed raw execution: metadata.camera_type: Field required" in (
        result.stderr
    )
    assert f"error: {missing}: cannot read file" in result.stderr
    assert "2 of 4 files rejected" in result.stderr
    ids = [r["id"] for r in await db_pool.fetch("SELECT id FROM executions ORDER BY id")]
    assert ids == [11, 12]
    assert await db_pool.fetchval("SELECT source FROM rejected_inputs") == f"file:{broken}"
