"""The n8n source against real PostgreSQL (an n8n-shaped database): the trigger, LISTEN,
the catch-up, and n8n's database missing at start, lost mid-run, or without its trigger."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from services.demo.generator import make_raw_execution
from services.etl.errors import ExecutionIdTaken
from services.etl.stage1 import n8n_trigger
from services.etl.stage1.ingest import ingest_execution
from services.etl.stage1.n8n_source import N8nSource, N8nSourceConfig
from services.etl.stage2.n8n_run import NodeNames
from testkit.n8n import runs, tables
from testkit.tcp_proxy import ProxyFactory
from testkit.waiting import wait_until

RUN_DATA = runs.text_of(runs.inline_frame(runs.fixture_root(), runs.jpeg(64, 48)))
CHANNEL = "smokesignal_n8n_test"


def source_config(url: str, **overrides: Any) -> N8nSourceConfig:
    values: dict[str, Any] = {
        "database_url": url,
        "workflow_id": tables.WORKFLOW_ID,
        "channel": CHANNEL,
        "names": NodeNames(),
        "catchup_interval_s": 0.2,
        "catchup_batch": 50,
        "catchup_settle_s": 0.0,
        "retry_max_s": 0.3,
    }
    values.update(overrides)
    return N8nSourceConfig(**values)


@pytest.fixture
async def n8n_url(empty_database_url: str) -> str:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await tables.create_tables(conn)
    finally:
        await conn.close()
    return empty_database_url


@asynccontextmanager
async def running(source: N8nSource) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def recorded(pool: asyncpg.Pool) -> set[int]:
    return {r["id"] for r in await pool.fetch("SELECT id FROM executions")}


async def finish_some(conn: asyncpg.Connection, count: int, status: str = "success") -> set[int]:
    ids = set()
    for _ in range(count):
        execution_id = await tables.start_execution(conn)
        await tables.finish_execution(conn, execution_id, RUN_DATA, status)
        ids.add(execution_id)
    return ids


def trigger_cli(action: str, n8n_url: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.etl", "n8n-trigger", action],
        env={"N8N_DATABASE_URL": n8n_url, "N8N_NOTIFY_CHANNEL": CHANNEL, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


async def test_trigger_cli_is_idempotent_and_uninstalls(n8n_url: str) -> None:
    assert trigger_cli("status", n8n_url) == "trigger not installed"
    assert trigger_cli("install", n8n_url) == f"trigger installed; NOTIFY channel {CHANNEL}"
    assert trigger_cli("install", n8n_url).startswith("trigger installed")
    assert trigger_cli("status", n8n_url) == "trigger installed"
    conn = await asyncpg.connect(n8n_url)
    try:
        heard: asyncio.Queue[str] = asyncio.Queue()
        listener = await asyncpg.connect(n8n_url)
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        execution_id = await tables.start_execution(conn)  # running: no NOTIFY
        await tables.finish_execution(conn, execution_id, RUN_DATA, "error")
        assert await asyncio.wait_for(heard.get(), 10) == str(execution_id)
        assert heard.empty()
        await listener.close()
    finally:
        await conn.close()
    assert trigger_cli("uninstall", n8n_url) == "trigger uninstalled"
    assert trigger_cli("uninstall", n8n_url) == "trigger uninstalled"
    assert trigger_cli("status", n8n_url) == "trigger not installed"


async def test_notify_records_at_once_without_waiting_for_the_catch_up(
    n8n_url: str, db_pool: asyncpg.Pool
) -> None:
    conn = await asyncpg.connect(n8n_url)
    await n8n_trigger.install(conn, CHANNEL)
    # A catch-up an hour away: only the NOTIFY can bring these in.
    source = N8nSource(db_pool, source_config(n8n_url, catchup_interval_s=3600))
    try:
        async with running(source) as task:
            await wait_until(lambda: _up(source), "the source to connect", alive=[task])
            await wait_until(lambda: _rounds(source, 1), "the first catch-up", alive=[task])
            ids = await finish_some(conn, 5)
            await wait_until(
                lambda: _recorded_all(db_pool, ids), "NOTIFYed executions", alive=[task]
            )
        row = await db_pool.fetchrow(
            "SELECT e.*, r.source_format FROM executions e JOIN execution_raw r "
            "ON r.execution_id = e.id WHERE e.id = $1",
            min(ids),
        )
        assert row is not None
        assert (row["source_format"], row["status"], row["source_status"]) == (
            "n8n",
            "success",
            "success",
        )
        assert (row["camera_id"], row["device_id"]) == ("cam-01-north", "sai-cam-node-01")
    finally:
        await conn.close()


async def test_without_the_trigger_the_catch_up_still_finds_everything(
    n8n_url: str, db_pool: asyncpg.Pool
) -> None:
    conn = await asyncpg.connect(n8n_url)
    try:
        await n8n_trigger.install(conn, CHANNEL)
        await n8n_trigger.uninstall(conn)  # dropped: no NOTIFY will ever come
        running_one = await tables.start_execution(conn)
        ids = await finish_some(conn, 3, "error") | await finish_some(conn, 3)
        source = N8nSource(db_pool, source_config(n8n_url))
        async with running(source) as task:
            await wait_until(lambda: _recorded_all(db_pool, ids), "catch-up", alive=[task])
            # Finishing after later ids did: still found.
            await tables.finish_execution(conn, running_one, RUN_DATA)
            await wait_until(
                lambda: _recorded_all(db_pool, {running_one}), "the late finisher", alive=[task]
            )
        assert await db_pool.fetchval("SELECT floor_id FROM n8n_catchup") == max(ids)
    finally:
        await conn.close()


async def test_n8n_database_down_at_start_then_back(
    db_pool: asyncpg.Pool,
    tcp_proxy: ProxyFactory,
    n8n_url: str,
) -> None:
    proxy, proxied = tcp_proxy(n8n_url)
    proxy.cut()  # n8n's database unreachable when the service starts
    conn = await asyncpg.connect(n8n_url)
    try:
        ids = await finish_some(conn, 4)
        source = N8nSource(db_pool, source_config(proxied))
        async with running(source) as task:
            await wait_until(lambda: _down_with_error(source), "the outage noticed", alive=[task])
            await asyncio.sleep(0.5)
            assert not task.done(), "the source keeps running while n8n is away"
            assert await recorded(db_pool) == set()
            proxy.restore()
            await wait_until(
                lambda: _recorded_all(db_pool, ids), "catch-up on return", alive=[task]
            )
            assert source.up
    finally:
        await conn.close()


async def test_n8n_database_lost_mid_run(
    db_pool: asyncpg.Pool, tcp_proxy: ProxyFactory, n8n_url: str
) -> None:
    proxy, proxied = tcp_proxy(n8n_url)
    conn = await asyncpg.connect(n8n_url)
    try:
        await n8n_trigger.install(conn, CHANNEL)
        source = N8nSource(db_pool, source_config(proxied))
        async with running(source) as task:
            first = await finish_some(conn, 2)
            await wait_until(lambda: _recorded_all(db_pool, first), "before the cut", alive=[task])
            proxy.cut()
            await wait_until(lambda: _down_with_error(source), "the loss noticed", alive=[task])
            during = await finish_some(conn, 3)  # their NOTIFYs go nowhere
            proxy.restore()
            await wait_until(
                lambda: _recorded_all(db_pool, during), "catch-up after the loss", alive=[task]
            )
        assert await recorded(db_pool) == first | during
    finally:
        await conn.close()


async def test_an_id_taken_by_the_other_source_is_refused_both_ways(
    n8n_url: str, db_pool: asyncpg.Pool
) -> None:
    """n8n and raw ingest share `executions.id`: neither may silently stand for the other."""
    conn = await asyncpg.connect(n8n_url)
    try:
        await n8n_trigger.install(conn, CHANNEL)
        await ingest_execution(db_pool, json.dumps(make_raw_execution(2)))  # raw took id 2
        ids = await finish_some(conn, 3)  # n8n's 1, 2, 3: its 2 collides
        assert ids == {1, 2, 3}
        source = N8nSource(db_pool, source_config(n8n_url))
        async with running(source) as task:
            await wait_until(lambda: _recorded_all(db_pool, ids), "n8n's runs", alive=[task])
            await wait_until(lambda: _rounds(source, 3), "more catch-up rounds", alive=[task])
            assert await db_pool.fetchval("SELECT floor_id FROM n8n_catchup") == 3
        rows = await db_pool.fetch("SELECT execution_id, source_format FROM execution_raw")
        formats = {r["execution_id"]: r["source_format"] for r in rows}
        assert formats == {1: "n8n", 2: "raw", 3: "n8n"}, "the raw execution is left as it was"
        refused = await db_pool.fetch("SELECT * FROM rejected_inputs")
        assert len(refused) == 1, "said once, however many rounds and NOTIFYs saw it"
        assert refused[0]["execution_id"] == 2
        assert refused[0]["source"] == f"n8n:{tables.WORKFLOW_ID}"
        assert "execution id 2 is already taken by a raw execution" in refused[0]["error"]

        # The other way: a raw execution with an id n8n already has.
        with pytest.raises(ExecutionIdTaken, match="id 3 is already taken by an n8n execution"):
            await ingest_execution(db_pool, json.dumps(make_raw_execution(3)), source="test")
        assert (
            await db_pool.fetchval("SELECT count(*) FROM rejected_inputs WHERE source = 'test'")
            == 1
        )
        assert (
            await db_pool.fetchval("SELECT source_format FROM execution_raw WHERE execution_id = 3")
            == "n8n"
        )
    finally:
        await conn.close()


async def _up(source: N8nSource) -> bool:
    return source.up


async def _rounds(source: N8nSource, count: int) -> bool:
    return source.catchup_rounds >= count


async def _down_with_error(source: N8nSource) -> bool:
    return not source.up and bool(source.last_error)


async def _recorded_all(pool: asyncpg.Pool, ids: set[int]) -> bool:
    return ids <= await recorded(pool)
