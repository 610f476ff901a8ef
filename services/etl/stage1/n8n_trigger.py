"""The trigger smokesignal installs into n8n's database: NOTIFY when an execution finishes.

`python -m services.etl n8n-trigger install|uninstall|status` (idempotent). The
only object smokesignal ever creates in n8n's database; everything else it does
there is reading. The NOTIFY carries the execution id only and is delivered at
commit, when n8n has written the run data in the same transaction (n8n updates
execution_entity and execution_data atomically on PostgreSQL).

It fires for every workflow (the service filters by N8N_WORKFLOW_ID), so a
changed workflow id needs no reinstall. A NOTIFY is only a wake-up: the
catch-up finds every finished execution whether or not one arrives.
"""

from __future__ import annotations

import asyncpg

FUNCTION = "smokesignal_notify_execution_finished"
TRIGGER = "smokesignal_execution_finished"
FINISHED = "('success', 'error', 'canceled', 'crashed')"


def install_sql(channel: str) -> str:
    # The channel is validated by the settings (a plain identifier); quote_literal anyway.
    return f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify({_literal(channel)}, NEW.id::text);
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS {TRIGGER} ON execution_entity;
CREATE TRIGGER {TRIGGER}
    AFTER INSERT OR UPDATE OF status, finished, "stoppedAt" ON execution_entity
    FOR EACH ROW WHEN (NEW.status IN {FINISHED})
    EXECUTE FUNCTION {FUNCTION}();
"""


UNINSTALL_SQL = f"""
DROP TRIGGER IF EXISTS {TRIGGER} ON execution_entity;
DROP FUNCTION IF EXISTS {FUNCTION}();
"""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def install(conn: asyncpg.Connection, channel: str) -> None:
    async with conn.transaction():
        await conn.execute(install_sql(channel))


async def uninstall(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute(UNINSTALL_SQL)


async def installed(conn: asyncpg.Connection) -> bool:
    found = await conn.fetchval(
        """SELECT true FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE t.tgname = $1 AND c.relname = 'execution_entity' AND NOT t.tgisinternal""",
        TRIGGER,
    )
    return bool(found)
