"""A deadline for each REST request: past it, 503 instead of a hung request.

The REST handlers wait on nothing but the database; when it stalls (connections
open, no data) a request would wait for a pooled connection, then for its
statement, for as long as TCP allows. The pool's command timeout bounds each
statement; this bounds the whole request, the wait for a connection included,
until its response starts (a streamed export may then go on). The event
stream is excluded.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable, retry shortly"


def database_unavailable_response() -> JSONResponse:
    return JSONResponse({"detail": DATABASE_UNAVAILABLE}, status_code=503)


class RequestDeadline:
    def __init__(
        self, app: ASGIApp, *, timeout_s: float, prefix: str, exclude: frozenset[str]
    ) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefix) or path in self.exclude:
            await self.app(scope, receive, send)
            return
        started = False
        deadline = asyncio.timeout(self.timeout_s)

        async def send_tracking_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                # The answer has begun (a long export may stream on): no deadline now.
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, send_tracking_start)
        except TimeoutError:
            if started:  # a TimeoutError of the app's own, after its answer began
                raise
            log.warning(
                "request deadline passed; answering 503",
                extra={"path": path, "timeout_s": self.timeout_s},
            )
            await database_unavailable_response()(scope, receive, send)
