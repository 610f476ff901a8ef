from __future__ import annotations

import asyncpg
import pytest

from testkit.tcp_proxy import TcpProxy


async def test_cut_drops_connections_and_refuses_until_restored(
    database_url: str, tcp_proxy
) -> None:
    proxy, url = tcp_proxy(database_url)
    assert isinstance(proxy, TcpProxy)
    conn = await asyncpg.connect(url)
    assert await conn.fetchval("SELECT 1") == 1
    proxy.cut()
    with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
        await conn.fetchval("SELECT 1")
    with pytest.raises(OSError):
        await asyncpg.connect(url, timeout=2)
    proxy.restore()
    conn = await asyncpg.connect(url)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()
