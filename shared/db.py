"""PostgreSQL access: asyncpg pool creation and the migration runner."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared import queries
from shared.backoff import Backoff, retry

log = logging.getLogger(__name__)

STAGE2_CHANNEL = "stage2_jobs"
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x5D0CE516
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# What an unreachable or restarting database raises.
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def database_url_named(url: str, name: str) -> str:
    """The same server (and credentials) as `url`, pointing at database `name`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create database `name` (a copy of `template` when given); its URL."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(queries.create_database(name, template))
    finally:
        await admin.close()
    return database_url_named(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, ending its sessions."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(queries.drop_database(name))
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The versioned SQL files shipped in shared/migrations, in order."""
    found: list[Migration] = []
    for entry in resources.files("shared.migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def migrate(dsn: str) -> list[int]:
    """Apply pending migrations; return the versions applied.

    Idempotent, and safe when several services start at once: a session-level
    advisory lock serialises runners, and each file applies in its own transaction.
    """
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await conn.execute(queries.MIGRATION_LOCK, _MIGRATION_LOCK_KEY)
        try:
            await conn.execute(queries.CREATE_SCHEMA_MIGRATIONS)
            done = {r["version"] for r in await conn.fetch(queries.APPLIED_MIGRATIONS)}
            applied: list[int] = []
            for migration in load_migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(queries.RECORD_MIGRATION, migration.version, migration.name)
                log.info("applied migration", extra={"version": migration.version})
                applied.append(migration.version)
            return applied
        finally:
            await conn.execute(queries.MIGRATION_UNLOCK, _MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's RESET ALL / UNLISTEN * round trip on every release.

    The services keep no session state on pooled connections (only SET LOCAL and
    transaction-level advisory locks; LISTEN has its own connection), and asyncpg
    still rolls back any open transaction before a connection goes back.
    """


async def create_pool(
    dsn: str,
    min_size: int = 1,
    max_size: int = 10,
    *,
    command_timeout: float | None = None,
    connect_timeout: float = 60.0,
) -> asyncpg.Pool:
    """A pool; `command_timeout` bounds every statement (and asyncpg's cancel request
    after one timed out), `connect_timeout` every new connection (asyncpg's default 60 s)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        command_timeout=command_timeout,
        timeout=connect_timeout,
    )
    assert pool is not None  # create_pool only returns None when not awaited
    return pool


async def ping(pool: asyncpg.Pool) -> None:
    """Raises unless the database answers a statement (the services' readiness probes)."""
    await pool.fetchval(queries.PING)


async def migrate_when_reachable(
    dsn: str,
    *,
    stop: asyncio.Event | None = None,
    give_up_after_s: float | None = None,
) -> bool:
    """Apply migrations, waiting with backoff while the database is unreachable.

    Every service starts this way, so start order does not matter. Returns False
    if `stop` is set first; re-raises the last error after `give_up_after_s`.
    """

    async def apply() -> bool:
        await migrate(dsn)
        return True

    applied = await retry(
        apply,
        retry_on=DATABASE_ERRORS,
        backoff=Backoff(0.2, 5.0),
        log=log,
        message="database unreachable at start-up, retrying",
        stop=stop or asyncio.Event(),
        give_up_after_s=give_up_after_s,
    )
    return bool(applied)
