"""One process of a client swarm: `python -m bench.clients.swarm_member ...` (run by Swarm).

It holds its share of the SSE connections (bench/clients/sse_load.py), bound to its
own source address, and answers the parent's commands, one JSON object per line on
stdin, with one JSON line on stdout:
  {"cmd": "beats"}                       → {"beats": [heartbeats per connection]}
  {"cmd": "wait", "event": k, "sent": t, "within_s": s}
                                         → {"received": n, "delays_s": [...]} (arrival - t)
  {"cmd": "status"}                      → {"held": n, "lost": n, "extra_events": n}
  {"cmd": "close"}                       → closes every connection and exits.
After connecting it prints {"connected": n, "connect_s": s} (or {"error": ...}).
Several processes because one process may hold fewer than RLIMIT_NOFILE sockets
(20,000 here) and one source address only ~28k ephemeral ports to one server port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import uvloop

from bench.clients.sse_load import FanoutClient
from bench.harness.infra import raise_nofile_limit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.clients.swarm_member")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--source", required=True, help="source address, e.g. 127.0.0.2")
    parser.add_argument("--marker", required=True, help="once in every data event")
    parser.add_argument("--beat-marker", required=True, help="once in every heartbeat")
    parser.add_argument("--max-events", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes at once")
    parser.add_argument("--within-s", type=float, default=1800, help="time to connect all")
    return parser.parse_args(argv)


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def answer(client: FanoutClient, command: dict[str, Any]) -> dict[str, Any]:
    if command["cmd"] == "beats":
        return {"beats": client.beats()}
    if command["cmd"] == "wait":
        event = int(command["event"])
        await client.wait_for(event, within_s=float(command["within_s"]))
        delays = client.delivery_times(event, float(command["sent"]))
        return {"received": client.received(event), "delays_s": [round(d, 5) for d in delays]}
    if command["cmd"] == "status":
        held = len(client.connections) - client.lost
        return {"held": held, "lost": client.lost, "extra_events": client.extra_events}
    raise ValueError(f"unknown command {command!r}")


async def serve(args: argparse.Namespace) -> None:
    client = FanoutClient(
        args.host,
        args.port,
        args.path,
        args.connections,
        args.marker.encode(),
        args.max_events,
        beat_marker=args.beat_marker.encode(),
        source_address=args.source,
    )
    try:
        try:
            connect_s = await client.connect_all(args.concurrency, args.within_s)
        except (OSError, TimeoutError) as exc:
            reply({"error": repr(exc), "connected": len(client.connections)})
            return
        reply({"connected": len(client.connections) - client.lost, "connect_s": connect_s})
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        while line := await stdin.readline():
            command = json.loads(line)
            if command["cmd"] == "close":
                return
            reply(await answer(client, command))
    finally:
        client.close()


def main() -> None:
    raise_nofile_limit()  # soft → hard: a member holds up to ~20,000 sockets
    uvloop.run(serve(parse_args()))


if __name__ == "__main__":
    main()
