"""Writing events into the transactional outbox (table `outbox`, migration 0001).

Any service that changes state and must tell the bus writes the event here in
the SAME transaction; the ETL worker's outbox relay publishes it in id order
with publisher confirms (services/etl/outbox/relay.py). So an event exists exactly
when its change committed, and it reaches the gateways' replay buffers like
every other event.
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared import queries
from shared.contracts import ROUTING_KEY_BY_MODEL, BusMessage, encode

# Relays LISTEN here; NOTIFY is delivered at commit, together with the outbox row.
OUTBOX_CHANNEL = "outbox_events"


async def write_event(
    conn: asyncpg.Connection | PoolConnectionProxy,
    message: BusMessage,
    execution_id: int | None = None,
) -> None:
    """Queue `message` for the relay; call inside the transaction of the change."""
    # One round trip: the row and the relay's wake-up (delivered at commit).
    await conn.execute(
        queries.WRITE_OUTBOX_EVENT,
        ROUTING_KEY_BY_MODEL[type(message)].value,
        execution_id,
        encode(message).decode(),
        OUTBOX_CHANNEL,
    )
