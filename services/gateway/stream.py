"""One client's SSE stream: connection event, backlog, then live events until dropped."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message, Receive, Scope, Send

from services.gateway.hub import Client, Event, Hub, now_iso
from shared.contracts import SSE_CONNECTION

log = logging.getLogger(__name__)


async def client_events(
    hub: Hub, client: Client, backlog: list[Event], resumed_from: str | None
) -> AsyncIterator[bytes]:
    """The stream's chunks; hub events are framed once by the hub, not once per client."""
    connection = {"client_id": client.id, "timestamp": now_iso(), "resumed_from": resumed_from}
    yield ServerSentEvent(data=json.dumps(connection), event=SSE_CONNECTION).encode()
    hub.stats.events_sent[SSE_CONNECTION] += 1
    for event in backlog:
        yield event.wire
        hub.stats.events_sent[event.event] += 1
    while True:
        event_or_end = await client.next()
        if event_or_end is None:
            # Dropped: end the stream; the browser reconnects with Last-Event-ID.
            return
        yield event_or_end.wire
        hub.stats.events_sent[event_or_end.event] += 1


class ClientStreamResponse(EventSourceResponse):
    """An EventSourceResponse bound to a hub client.

    It unregisters the client however the response ends (even if the stream
    never started), and cuts the connection when the hub dropped the client but
    the stream did not end by itself within `drop_grace_s` — which is what
    happens when it is stuck writing to a client that stopped reading.

    Per connection it runs only sse-starlette's own tasks (stream, disconnect
    listener, exit listener): no ping task (the hub sends heartbeats through the
    client's queue) and no task group of ours (the cut reuses the exit listener,
    and the hub ends every stream at server exit). Memory and tasks per
    connection are what limit the fan-out; see docs/GATEWAY.md.
    """

    def __init__(
        self,
        hub: Hub,
        client: Client,
        content: AsyncIterator[bytes],
        *,
        drop_grace_s: float,
        send_timeout: float | None,
    ) -> None:
        super().__init__(content, ping=0, send_timeout=send_timeout)
        self._hub = hub
        self._client = client
        self._drop_grace_s = drop_grace_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.warning(
                "SSE send timed out; closing the connection", extra={"client_id": self._client.id}
            )
        finally:
            self._hub.unsubscribe(self._client)

    async def _listen_for_exit_signal(self) -> None:  # type: ignore[override]
        # sse-starlette runs this in the response's task group and ends the
        # response when it returns. Server exit reaches the stream through the hub
        # (end_streams_at_server_exit), so here it waits for the client's drop.
        await self._client.ended
        await anyio.sleep(self._drop_grace_s)
        log.info(
            "cutting connection of dropped SSE client",
            extra={"client_id": self._client.id, "reason": self._client.drop_reason},
        )

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            # No cancel scope per write: arming it cost a quarter of the fan-out's CPU.
            await send(message)
            return
        await super()._send_with_timeout(send, message)


async def end_streams_at_server_exit(hub: Hub) -> None:
    """When uvicorn starts shutting down, end every client stream (one waiter for all)."""
    await EventSourceResponse._listen_for_exit_signal()
    hub.close()
