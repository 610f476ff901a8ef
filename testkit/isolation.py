"""Per-run databases and exchange names for tests and benchmarks, and the leak check.

Every name this process hands out starts with a prefix that holds RUN_ID, so
the end-of-run check can list exactly this run's leftovers on a broker and a
database server shared with other people's runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aio_pika
import asyncpg

from shared.db import create_database, drop_database, migrate

# One id per test or benchmark run (per process: each pytest or bench run is one; under
# pytest-xdist each worker has its own, and the controller checks them all at the end).
RUN_ID = uuid.uuid4().hex[:6]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def database_prefix(kind: str, run_id: str = RUN_ID) -> str:
    """`ss_<kind>_<run>_`: every database of this run of that kind starts with it."""
    return f"ss_{kind}_{run_id}_"


def exchange_prefix(kind: str = "test", run_id: str = RUN_ID) -> str:
    """`<kind>.<run>.`: every exchange (and queue) of this run starts with it."""
    return f"{kind}.{run_id}."


def new_database_name(kind: str = "t") -> str:
    return f"{database_prefix(kind)}{uuid.uuid4().hex[:10]}"


def new_exchange_name(kind: str = "test", label: str = "") -> str:
    """A per-test exchange name; its dead-letter exchange and queues derive from it."""
    middle = f"{label}_{uuid.uuid4().hex[:8]}" if label else uuid.uuid4().hex[:12]
    return f"{exchange_prefix(kind)}{middle}.events"


class BackgroundDrops:
    """Drops databases off the caller's path, several at once.

    DROP DATABASE waits for a checkpoint (PostgreSQL 15), which takes seconds on a
    busy server; a test's teardown need not wait for it, and drops that run at the
    same time share one checkpoint. `close()` waits for every drop and raises the
    first error (the end-of-run leak check would name what is left anyway).
    """

    def __init__(self, admin_url: str, at_once: int = 4) -> None:
        self._admin_url = admin_url
        self._pool = ThreadPoolExecutor(at_once, thread_name_prefix="drop-database")
        self._pending: list[Future[None]] = []

    def drop(self, name: str) -> None:
        self._pending.append(self._pool.submit(self._drop, name))

    def _drop(self, name: str) -> None:
        asyncio.run(drop_database(self._admin_url, name))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for done in self._pending:
            done.result()


@asynccontextmanager
async def temporary_database(
    admin_url: str, kind: str = "t", *, migrated: bool = True
) -> AsyncIterator[str]:
    """A fresh (migrated) database; dropped WITH (FORCE) afterwards."""
    name = new_database_name(kind)
    url = await create_database(admin_url, name)
    try:
        if migrated:
            await migrate(url)
        yield url
    finally:
        await drop_database(admin_url, name)


# Queues the services derive from an exchange name (dead letters; the gateways' event stream).
DERIVED_QUEUES = (".dead-letter", ".stream")


async def delete_exchange(amqp_url: str, exchange: str, *queues: str) -> None:
    """Remove an exchange, its dead-letter exchange, its derived queues and the given ones."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for queue in (*queues, *(f"{exchange}{suffix}" for suffix in DERIVED_QUEUES)):
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dlx")
    finally:
        await connection.close()


@dataclass
class Leftovers:
    exchanges: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # what could not be listed, and why

    def __bool__(self) -> bool:
        return bool(self.exchanges or self.queues or self.databases)


def _rabbitmqctl_names(what: str) -> list[str] | None:
    """Names of the broker's exchanges or queues (None: rabbitmqctl not usable here)."""
    ctl = shutil.which("rabbitmqctl") or (
        "/usr/sbin/rabbitmqctl" if os.path.exists("/usr/sbin/rabbitmqctl") else None
    )
    if ctl is None:
        return None
    try:
        done = subprocess.run(
            [ctl, "-q", "list_" + what, "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


async def find_leftovers(
    admin_url: str, amqp_url: str, exchange_prefixes: list[str], database_prefixes: list[str]
) -> Leftovers:
    """This run's exchanges, queues and databases that still exist."""
    found = Leftovers()
    local_broker = urlsplit(amqp_url).hostname in ("127.0.0.1", "localhost", "::1")
    for what, bucket in (("exchanges", found.exchanges), ("queues", found.queues)):
        names = _rabbitmqctl_names(what) if local_broker else None
        if names is None:
            found.unchecked.append(f"{what}: rabbitmqctl for this broker is not available")
            continue
        bucket.extend(sorted(n for n in names if n.startswith(tuple(exchange_prefixes))))
    admin = await asyncpg.connect(admin_url)
    try:
        rows = await admin.fetch("SELECT datname FROM pg_database")
    finally:
        await admin.close()
    found.databases = sorted(
        r["datname"] for r in rows if r["datname"].startswith(tuple(database_prefixes))
    )
    return found


async def remove_leftovers(admin_url: str, amqp_url: str, leftovers: Leftovers) -> None:
    """Delete what a leak check found, so a failed run does not pile up on the servers."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for queue in leftovers.queues:
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        for exchange in leftovers.exchanges:
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
    finally:
        await connection.close()
    for name in leftovers.databases:
        await drop_database(admin_url, name)
