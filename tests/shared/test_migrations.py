from __future__ import annotations

import asyncio

import asyncpg

from shared.db import load_migrations, migrate


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return {r["table_name"] for r in rows}
    finally:
        await conn.close()


async def test_migrations_apply_once_and_are_idempotent(empty_database_url: str) -> None:
    versions = [m.version for m in load_migrations()]
    assert await migrate(empty_database_url) == versions
    assert await migrate(empty_database_url) == []
    assert {
        "executions",
        "execution_raw",
        "stage2_jobs",
        "outbox",
        "broadcast_ids",
        "rejected_inputs",
        "schema_migrations",
    } <= await _tables(empty_database_url)


async def test_concurrent_migrators_apply_each_version_exactly_once(
    empty_database_url: str,
) -> None:
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(3)))
    applied = sorted(v for result in results for v in result)
    assert applied == [m.version for m in load_migrations()]
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
    finally:
        await conn.close()
