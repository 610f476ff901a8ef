"""Bus → hub: every gateway process consumes every event through its own queue."""

from __future__ import annotations

import logging
import socket
import uuid

from services.gateway.hub import Hub
from shared.bus import Bus, Delivery
from shared.contracts import EVENTS, spec_for

log = logging.getLogger(__name__)

BROKER_RECONNECTED = "broker reconnected: events may have been missed"


def queue_name(exchange_name: str) -> str:
    """A per-process queue: each replica (and each restart) sees every event."""
    return f"{exchange_name}.gateway.{socket.gethostname()}.{uuid.uuid4().hex[:8]}"


async def start_consumer(bus: Bus, hub: Hub) -> str:
    """Bind this process's queue and forward each validated body to the hub."""

    async def forward(delivery: Delivery) -> None:
        # The body was validated by the bus against its contract: forward it untouched.
        event = hub.publish(spec_for(delivery.routing_key).sse_event, delivery.body.decode())
        log.debug(
            "forwarded event",
            extra={"routing_key": delivery.routing_key, "event_id": event.id},
        )

    async def on_reconnect() -> None:
        # The exclusive queue died with the old connection; what was published
        # meanwhile is gone from it, so dashboards must reload from the database.
        log.warning("broker reconnected; sending reset to SSE clients")
        hub.reset_all(BROKER_RECONNECTED)

    name = queue_name(bus.exchange_name)
    await bus.consume(name, [key.value for key in EVENTS], forward, durable=False, exclusive=True)
    bus.add_reconnect_callback(on_reconnect)
    return name
