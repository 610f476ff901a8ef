"""`python -m bench.clients.layer_server VARIANT PORT`: one idle SSE stack per variant.

Each variant answers any request with an SSE response head and then holds the
connection open without sending anything, adding one layer at a time:
  protocol       a bare asyncio.Protocol (uvloop): the floor
  uvicorn        uvicorn (httptools) + a raw ASGI callable awaiting the disconnect
  starlette      + Starlette routing and its StreamingResponse (a task group per response)
  sse_starlette  + FastAPI and sse-starlette's EventSourceResponse (the gateway before #20)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import cast

import uvicorn
import uvloop

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-store\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


class Idle(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(HEAD)


async def bare(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Idle, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


async def raw_asgi(scope: dict[str, object], receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b": hi\n\n", "more_body": True})  # type: ignore[operator]
    while (await receive())["type"] != "http.disconnect":  # type: ignore[operator]
        pass


async def _forever() -> AsyncIterator[bytes]:
    yield b": hi\n\n"
    await asyncio.Event().wait()


def starlette_app() -> object:
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def endpoint(_: object) -> StreamingResponse:
        return StreamingResponse(_forever(), media_type="text/event-stream")

    return Starlette(routes=[Route("/{path:path}", endpoint)])


def sse_starlette_app() -> object:
    from fastapi import FastAPI
    from sse_starlette import EventSourceResponse

    app = FastAPI()

    @app.get("/{path:path}")
    async def endpoint() -> EventSourceResponse:
        return EventSourceResponse(_forever(), ping=0)

    return app


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    if variant == "protocol":
        uvloop.run(bare(port))
        return
    app = {
        "uvicorn": lambda: raw_asgi,
        "starlette": starlette_app,
        "sse_starlette": sse_starlette_app,
    }[variant]()
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
