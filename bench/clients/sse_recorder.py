"""`python -m bench.clients.sse_recorder URL`: one SSE client in a process of its own.

It stamps each event's arrival (time.time(), the same clock the services and
PostgreSQL use on this machine) the moment httpx-sse yields it, and prints one
JSON line per data event to stdout; the benchmark reads the lines at leisure,
so its own work never delays a receipt. The first line is {"ready": true}
(the `connection` event arrived: the stream is live).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

import httpx
from httpx_sse import aconnect_sse

from shared.contracts import SSE_CONNECTION


def describe(event: str, data: str, received_at: float) -> dict[str, object]:
    payload = json.loads(data)
    line: dict[str, object] = {"t": received_at, "event": event}
    if event == "execution:batch":
        line["ids"] = [execution["id"] for execution in payload["executions"]]
        line["timestamp"] = payload.get("timestamp")  # the poller's clock as it published
    elif "execution_id" in payload:
        line["ids"] = [payload["execution_id"]]
        line["timestamp"] = payload.get("timestamp")
    return line


async def record(url: str) -> None:
    out = sys.stdout
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http,
        aconnect_sse(http, "GET", url) as source,
    ):
        source.response.raise_for_status()
        async for sse in source.aiter_sse():
            received_at = time.time()
            if sse.event == SSE_CONNECTION:
                out.write('{"ready": true}\n')
            elif sse.id:  # data events carry an id; heartbeats do not
                out.write(json.dumps(describe(sse.event, sse.data, received_at)) + "\n")
            out.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(record(sys.argv[1]))
