"""The trigger smokesignal installs into n8n's database: NOTIFY when an execution finishes.

`python -m services.etl n8n-trigger install|uninstall|status` (idempotent). The
only object smokesignal ever creates in n8n's database; everything else it does
there is reading. The NOTIFY carries the execution id only and is delivered at
commit, when n8n has written the run data in the same transaction (n8n updates
execution_entity and execution_data atomically on PostgreSQL).

It fires for every workflow (the service filters by N8N_WORKFLOW_ID), so a
changed workflow id needs no reinstall. A NOTIFY is only a wake-up: the
catch-up finds every finished execution whether or not one arrives. The SQL
is in services/etl/queries.py (its n8n section).
"""

from __future__ import annotations

import asyncpg

from services.etl import queries


async def install(conn: asyncpg.Connection, channel: str) -> None:
    async with conn.transaction():
        await conn.execute(queries.n8n_install_trigger(channel))


async def uninstall(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute(queries.N8N_UNINSTALL_TRIGGER)


async def installed(conn: asyncpg.Connection) -> bool:
    found = await conn.fetchval(queries.N8N_TRIGGER_INSTALLED, queries.N8N_TRIGGER)
    return bool(found)
