"""`python -m bench.clients.stream_tap AMQP_URL EXCHANGE`: a bare event-stream reader.

It reads the event stream from its head, like a gateway's live reader, stamps
when each `executions.new` batch arrives (time.time()) and prints one JSON line
per batch in sse_recorder's format (bench/clients/recorder.py reads both): the
broker's hop, separate from the gateway's. A process of its own, so the
benchmark's driver never delays a stamp. The first line is {"ready": true}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

from shared.bus import Bus, StreamEntry


async def tap(amqp_url: str, exchange: str) -> None:
    out = sys.stdout

    def on_entry(entry: StreamEntry) -> None:
        received_at = time.time()
        if entry.routing_key == "executions.new":
            ids = [execution["id"] for execution in json.loads(entry.body)["executions"]]
            out.write(json.dumps({"t": received_at, "event": "execution:batch", "ids": ids}))
            out.write("\n")
            out.flush()

    async with Bus(amqp_url, exchange) as bus:
        stop = await bus.read_stream(on_entry, offset="next")
        out.write('{"ready": true}\n')
        out.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tap(sys.argv[1], sys.argv[2]))
