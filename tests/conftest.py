"""Shared test fixtures: real PostgreSQL and RabbitMQ, isolated per test.

Each test gets its own database (cloned from a migrated template) and its own
exchange / queue names; all of it is removed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from shared.bus import Bus
from shared.db import create_pool, migrate
from tests.support.infra import Infra, InfraUnavailable, discover, with_database
from tests.support.processes import ServiceProcess
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    try:
        found = discover()
    except InfraUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield found
    found.stop()


async def _admin(infra: Infra) -> asyncpg.Connection:
    return await asyncpg.connect(infra.database_url)


@pytest.fixture(scope="session")
def template_database(infra: Infra) -> Iterator[str]:
    """A migrated database that per-test databases are cloned from."""
    name = f"ss_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def create() -> None:
        await migrate(await _create_database(infra, name))

    asyncio.run(create())
    yield name
    asyncio.run(_drop_database(infra, name))


async def _create_database(infra: Infra, name: str, template: str | None = None) -> str:
    admin = await _admin(infra)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return with_database(infra.database_url, name)


async def _drop_database(infra: Infra, name: str) -> None:
    admin = await _admin(infra)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(infra: Infra, template_database: str) -> AsyncIterator[str]:
    """URL of a fresh, migrated database for this test only."""
    name = f"ss_t_{uuid.uuid4().hex[:12]}"
    yield await _create_database(infra, name, template_database)
    await _drop_database(infra, name)


@pytest.fixture
async def empty_database_url(infra: Infra) -> AsyncIterator[str]:
    """URL of a fresh database with no schema (for migration tests)."""
    name = f"ss_e_{uuid.uuid4().hex[:12]}"
    yield await _create_database(infra, name)
    await _drop_database(infra, name)


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def exchange_name() -> str:
    """A per-test exchange; queues and the dead-letter exchange derive from it."""
    return f"test.{uuid.uuid4().hex[:12]}.events"


@pytest.fixture
def amqp_url(infra: Infra) -> str:
    return infra.amqp_url


@pytest.fixture
async def bus(amqp_url: str, exchange_name: str) -> AsyncIterator[Bus]:
    """A connected bus on this test's exchange; the topology is deleted afterwards."""
    connected = Bus(amqp_url, exchange_name)
    await connected.connect()
    yield connected
    await connected.delete_topology()
    await connected.close()


@pytest.fixture
def service_env(database_url: str, amqp_url: str, exchange_name: str) -> dict[str, str]:
    """Environment for a service subprocess bound to this test's database and exchange."""
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "EXCHANGE_NAME": exchange_name,
        "LOG_LEVEL": "INFO",
        # One gateway process unless a test asks for more (the default is one per core).
        "GATEWAY_WORKERS": "1",
    }


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[str], tuple[TcpProxy, str]]]:
    """Factory: tcp_proxy(url) -> (proxy, url through the proxy)."""
    proxies: list[TcpProxy] = []

    def make(url: str) -> tuple[TcpProxy, str]:
        parts = urlsplit(url)
        default_port = 5432 if parts.scheme.startswith("postgres") else 5672
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port).start()
        proxies.append(proxy)
        return proxy, proxy.proxied_url(url)

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def service_process() -> Iterator[Callable[..., ServiceProcess]]:
    """Factory: service_process(["services.etl", ...], env) -> started ServiceProcess."""
    started: list[ServiceProcess] = []

    def make(args: list[str], env: dict[str, str], name: str | None = None) -> ServiceProcess:
        proc = ServiceProcess(args, env, name).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.cleanup()
