"""Every SQL statement of shared/ (issue 18: one module of SQL per service, and this one
for what the services share): the migration runner's bookkeeping, the outbox write,
the readiness probe and creating or dropping a database (`make run`, the local n8n).

The column lists that feed the contracts' row readers stay beside those readers in
shared/executions.py: they are fragments, not statements, and change with the readers.
`tests/shared/test_sql_home.py` fails on a statement written anywhere else.
"""

from __future__ import annotations

# -- The migration runner (shared/db.py) -------------------------------------------
# A session-level advisory lock serialises runners started at once; $1 = the key.
MIGRATION_LOCK = "SELECT pg_advisory_lock($1)"
MIGRATION_UNLOCK = "SELECT pg_advisory_unlock($1)"

CREATE_SCHEMA_MIGRATIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    INTEGER PRIMARY KEY,
                       name       TEXT NOT NULL,
                       applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""

APPLIED_MIGRATIONS = "SELECT version FROM schema_migrations"

RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"

# -- The transactional outbox (shared/outbox.py) --------------------------------------
# The one way an event row is written; statements that must do more in the same
# round trip (the Stage 2 completion, services/etl/queries.py) embed it rather
# than spell it again.
INSERT_OUTBOX_ROW = "INSERT INTO outbox (routing_key, execution_id, payload)"

# One round trip: the row ($1 routing key, $2 execution id, $3 payload) and the
# relay's wake-up on channel $4 (a NOTIFY is delivered at commit, with the row).
WRITE_OUTBOX_EVENT = (
    f"WITH row AS ({INSERT_OUTBOX_ROW} VALUES ($1, $2, $3)) SELECT pg_notify($4, '')"
)

# -- Probes and administration -----------------------------------------------------
# Readiness: the database answers a statement.
PING = "SELECT 1"

# $1 = a database name; on the server's maintenance database.
DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = $1"


def quote_identifier(name: str) -> str:
    """`name` as an SQL identifier (CREATE/DROP DATABASE take no parameters)."""
    return '"' + name.replace('"', '""') + '"'


def create_database(name: str, template: str | None = None) -> str:
    """A new database; a copy of `template` when given (the tests' migrated one)."""
    clause = f" TEMPLATE {quote_identifier(template)}" if template else ""
    return f"CREATE DATABASE {quote_identifier(name)}{clause}"


def drop_database(name: str) -> str:
    """Drop it even while sessions are connected (they are ended)."""
    return f"DROP DATABASE IF EXISTS {quote_identifier(name)} WITH (FORCE)"
