"""Held connections: N concurrent SSE clients across worker processes, heartbeats held.

Issue 20: "40,000 concurrent clients on this 2-core box across worker processes
with heartbeats held". For the gateway (GATEWAY_WORKERS processes on one port)
and for nchan (as many nginx workers, `reuseport`), each in a fresh server:
  1. VmRSS and the open sockets of every server process before any client;
  2. N connections from a swarm of client processes (bench/clients/swarm.py),
     each bound to its own source address (one address has only ~28k ephemeral
     ports towards one server port; one process may hold < 20,000 sockets);
  3. one warm-up event to all; then RSS and sockets of every process again →
     KiB per connection per process, and for the server as a whole;
  4. hold for `hold_intervals` heartbeat intervals and count the heartbeats each
     client got: a client that got fewer than floor(hold_intervals) missed some;
  5. `events` single events, each waited for at every client: delivered/expected,
     one event to the last client (ms from the start of publishing);
  6. clients still held at the end (none may have been dropped).
The per-process limit of open files (20,000 hard here) is why the default is four
gateway workers for 40,000: two would need ~20,000 sockets each plus their own.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.clients.swarm import Swarm
from bench.harness.infra import (
    bench_database,
    delete_exchange,
    exchange_name,
    open_sockets,
    process_rss_kib,
    process_tree,
    raise_nofile_limit,
    service_env,
)
from bench.harness.nchan import NchanServer
from bench.harness.stats import summary_ms
from shared.bus import Bus
from shared.contracts import SSE_HEARTBEAT, encode
from testkit.factories import stage2_complete
from testkit.gateway import GatewayProcess as Gateway
from testkit.isolation import unique

MARKER = b'"processing_time_ms"'
BEAT_MARKER = f"event: {SSE_HEARTBEAT}".encode()
SETTLE_S = 0.5


@dataclass(frozen=True)
class Scale:
    """The case's size; `python -m bench capacity --set connections=10000` changes one."""

    connections: int = 40_000
    workers: int = 4  # gateway workers, and nginx workers for nchan
    members: int = 4  # client processes, one source address each
    heartbeat_s: int = 5  # whole seconds: nchan's ping interval is
    hold_intervals: float = 2.5
    events: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.heartbeat_s, int):
            raise TypeError(f"heartbeat_s must be whole seconds, got {self.heartbeat_s!r}")


@dataclass
class Server:
    """A running SSE server: its root pid (its workers are its descendants)."""

    name: str
    port: int
    path: str
    pid: int
    publish: Callable[[int], Awaitable[None]]


def process_state(pid: int) -> dict[int, tuple[int, int]]:
    """For `pid` and its descendants: (VmRSS KiB, open sockets)."""
    return {m: (process_rss_kib(m), open_sockets(m)) for m in process_tree(pid)}


def per_process(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> list[dict[str, Any]]:
    rows = []
    for pid, (rss, sockets) in after.items():
        rss0, sockets0 = before.get(pid, (0, 0))
        added = sockets - sockets0
        rows.append(
            {
                "pid": pid,
                "rss_before_kib": rss0,
                "rss_after_kib": rss,
                "connections": added,
                "rss_per_connection_kib": round((rss - rss0) / added, 2) if added > 0 else None,
            }
        )
    return rows


async def measure(server: Server, scale: Scale) -> dict[str, Any]:
    connections, events = scale.connections, scale.events
    before = process_state(server.pid)
    swarm = Swarm(
        server.port, server.path, connections, scale.members, MARKER, BEAT_MARKER, 1 + events
    )
    async with swarm:
        held_at_start = (await swarm.status())["held"]
        await server.publish(0)  # warm-up: the first write allocates each connection's buffers
        warm, _ = await swarm.wait_for(0, time.time(), within_s=120)
        await asyncio.sleep(SETTLE_S)
        after = process_state(server.pid)

        start_beats = await swarm.beats()
        hold_s = scale.hold_intervals * scale.heartbeat_s
        await asyncio.sleep(hold_s)
        got = [b - a for a, b in zip(start_beats, await swarm.beats(), strict=True)]
        expected = math.floor(scale.hold_intervals)

        delivered, to_last, delays = [], [], []
        for k in range(1, 1 + events):
            sent = time.time()
            await server.publish(k)
            received, times = await swarm.wait_for(k, sent, within_s=120)
            delivered.append(received)
            delays.extend(times)
            to_last.append(max(times, default=math.nan))
            await asyncio.sleep(SETTLE_S)
        end = await swarm.status()
    rows = per_process(before, after)
    rss_added = sum(r["rss_after_kib"] - r["rss_before_kib"] for r in rows)
    return {
        "connections": connections,
        "client_processes": len(swarm.sizes),
        "connect_s": round(swarm.connect_s, 2),
        "held_after_connect": held_at_start,
        "warm_up_delivered": warm,
        "processes": rows,
        "rss_total_before_kib": sum(r["rss_before_kib"] for r in rows),
        "rss_total_after_kib": sum(r["rss_after_kib"] for r in rows),
        "rss_per_connection_kib": round(rss_added / connections, 2),
        "heartbeat_s": scale.heartbeat_s,
        "hold_s": hold_s,
        "heartbeats_expected_per_client": expected,
        "heartbeats_per_client": {"min": min(got, default=0), "max": max(got, default=0)},
        "clients_short_of_heartbeats": sum(1 for g in got if g < expected),
        "heartbeat_misses": sum(max(0, expected - g) for g in got),
        "events": events,
        "events_delivered": delivered,
        "every_client_every_event": all(d == connections for d in delivered),
        "one_event": summary_ms(delays),
        "one_event_to_last_ms": [round(s * 1000, 1) for s in to_last],
        "held_at_end": end["held"],
        "lost": end["lost"],
    }


async def run_gateway(scale: Scale) -> dict[str, Any]:
    exchange = exchange_name("capacity")
    async with bench_database("capacity") as database_url:
        env = service_env(database_url, exchange)
        bus = Bus(env["AMQP_URL"], exchange)
        await bus.connect()
        gateway = Gateway(
            env, heartbeat_interval_s=scale.heartbeat_s, gateway_workers=scale.workers
        )
        try:
            await gateway.start()

            async def publish(index: int) -> None:
                await bus.publish(stage2_complete(index + 1, detection_count=3))

            server = Server("gateway", gateway.port, "/api/events", gateway.pid, publish)
            result = await measure(server, scale)
        finally:
            gateway.stop()
            await bus.close()
            await delete_exchange(exchange)
    return {"workers": scale.workers, **result}


async def run_nchan(scale: Scale) -> dict[str, Any]:
    channel = unique("capacity")
    # reuseport spreads connections unevenly: room for it in each worker.
    per_worker = scale.connections // scale.workers + 4000
    with NchanServer(
        connections=per_worker, workers=scale.workers, ping_s=scale.heartbeat_s
    ) as nchan:
        async with httpx.AsyncClient(timeout=30) as http:

            async def publish(index: int) -> None:
                body = encode(stage2_complete(index + 1, detection_count=3))
                response = await http.post(
                    nchan.publish_url(channel),
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                response.raise_for_status()

            server = Server(
                "nchan", nchan.port, nchan.subscribe_path(channel), nchan.process.pid, publish
            )
            result = await measure(server, scale)
    return {"workers": scale.workers, **result}


async def run(peer: bool = True, **scale: Any) -> dict[str, Any]:
    """The gateway, then (`peer`) nchan, at `Scale(**scale)`."""
    size = Scale(**scale)
    limit = raise_nofile_limit()
    gateway = await run_gateway(size)
    nchan = await run_nchan(size) if peer else None
    ratio = None
    if nchan:
        ours, theirs = max(gateway["one_event_to_last_ms"]), max(nchan["one_event_to_last_ms"])
        ratio = round(ours / theirs, 2) if theirs > 0 else None
    return {
        "nofile_limit": limit,
        "gateway": gateway,
        "nchan": nchan,
        "worst_to_last_ratio_gateway_over_nchan": ratio,
    }
