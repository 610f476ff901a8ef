"""Fan-out: N concurrent SSE connections on one gateway process, and the same on nchan.

For each server and each N (a fresh server process per N, so RSS starts clean):
  1. RSS of the server process (VmRSS) with no client connected;
  2. open N EventSource connections (raw asyncio sockets, bench/sse_load.py);
  3. one warm-up event to all, then RSS again → (after - before) / N = KiB per connection;
  4. `singles` events one at a time: per-connection delivery time from the moment
     the publisher starts publishing to the moment the client reads it (p50/p99),
     and the time until the last connection has it;
  5. a burst of `burst` events published back to back: delivered events/s =
     N x burst / (first publish → last connection has the last event).
The gateway's events travel publisher → RabbitMQ → gateway → SSE; nchan's go
HTTP POST → nchan → SSE. Both carry the same Stage2Complete JSON body.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.clients.sse_load import FanoutClient
from bench.harness.infra import (
    bench_database,
    cpu_seconds,
    delete_exchange,
    exchange_name,
    raise_nofile_limit,
    rss_kib,
    service_env,
)
from bench.harness.nchan import NchanServer
from bench.harness.profiling import Profile
from bench.harness.stats import summary_ms
from shared.bus import Bus
from shared.contracts import Stage2Complete, encode
from testkit.factories import stage2_complete
from testkit.gateway import GatewayProcess as Gateway
from testkit.isolation import unique

MARKER = b'"processing_time_ms"'
SETTLE_S = 0.3


def event_body(index: int) -> Stage2Complete:
    return stage2_complete(index + 1, detection_count=3)


@dataclass
class Target:
    """A running SSE server the fan-out harness can drive."""

    name: str
    port: int
    path: str
    pid: int
    publish: Callable[[int], Awaitable[None]]


async def measure(
    target: Target, connections: int, singles: int, burst: int, profile: bool = False
) -> dict[str, Any]:
    profile_events = burst * 2 if profile else 0
    total_events = 1 + singles + burst + profile_events
    rss_before = rss_kib(target.pid)
    client = FanoutClient("127.0.0.1", target.port, target.path, connections, MARKER, total_events)
    try:
        connect_s = await client.connect_all()
        # Warm-up: first write to each connection allocates its buffers.
        await target.publish(0)
        if not await client.wait_for(0, within_s=60):
            raise RuntimeError(f"{target.name}: warm-up reached {client.received(0)}/{connections}")
        await asyncio.sleep(SETTLE_S)
        rss_after = rss_kib(target.pid)

        deliveries: list[float] = []
        to_all: list[float] = []
        for k in range(1, 1 + singles):
            sent = time.time()
            await target.publish(k)
            complete = await client.wait_for(k, within_s=60)
            times = client.delivery_times(k, sent)
            deliveries.extend(times)
            if complete:
                to_all.append(max(times))
            await asyncio.sleep(SETTLE_S)

        first = 1 + singles
        cpu_before = cpu_seconds(target.pid)
        burst_start = time.time()
        for k in range(first, first + burst):
            await target.publish(k)
        burst_complete = await client.wait_for(first + burst - 1, within_s=120)
        burst_end = max(
            max(client.delivery_times(k, 0.0), default=burst_start)
            for k in range(first, first + burst)
        )
        burst_elapsed = burst_end - burst_start
        delivered = sum(client.received(k) for k in range(first, first + burst))
        server_cpu = cpu_seconds(target.pid) - cpu_before
        profile_summary = None
        if profile_events:
            # A second, longer burst under py-spy (not part of the figures above).
            start = first + burst
            async with Profile(target.pid, f"fanout-{target.name}-{connections}") as sampler:
                for k in range(start, start + profile_events):
                    await target.publish(k)
                await client.wait_for(start + profile_events - 1, within_s=120)
            profile_summary = sampler.summary
        return {
            "connections": connections,
            "connected": len(client.connections) - client.lost,
            "connect_s": round(connect_s, 2),
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "rss_per_connection_kib": round((rss_after - rss_before) / connections, 2),
            "one_event": summary_ms(deliveries),
            "one_event_to_all_ms": summary_ms(to_all),
            "burst_events": burst,
            "burst_complete": burst_complete,
            "delivered": delivered,
            "delivered_per_s": round(delivered / burst_elapsed) if burst_elapsed > 0 else None,
            "server_cpu_s_per_1k_deliveries": round(server_cpu / delivered * 1000, 4)
            if delivered
            else None,
            "profile": profile_summary,
        }
    finally:
        client.close()


async def run_gateway(
    counts: list[int],
    singles: int,
    burst: int,
    profile_at: int | None,
    module: str = "services.gateway",
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
) -> list[dict[str, Any]]:
    results = []
    exchange = exchange_name("fanout")
    async with bench_database("fanout") as database_url:
        bus = Bus(service_env(database_url, exchange)["AMQP_URL"], exchange)
        await bus.connect()
        try:

            async def publish(index: int) -> None:
                await bus.publish(event_body(index))

            for connections in counts:
                # Heartbeats off the measured path; a dead client is not expected here.
                gateway = Gateway(
                    {**service_env(database_url, exchange), **(extra_env or {})},
                    module,
                    heartbeat_interval_s=300,
                    client_queue_size=1000,
                    gateway_workers=workers,
                )
                await gateway.start()
                try:
                    target = Target("gateway", gateway.port, "/api/events", gateway.pid, publish)
                    results.append(
                        await measure(
                            target, connections, singles, burst, profile=connections == profile_at
                        )
                    )
                finally:
                    gateway.stop()
        finally:
            await bus.close()
            await delete_exchange(exchange)
    return results


async def run_nchan(
    counts: list[int], singles: int, burst: int, workers: int = 1
) -> list[dict[str, Any]]:
    """`workers` nginx worker processes on one port; RSS and CPU summed over all of them."""
    results = []
    async with httpx.AsyncClient(timeout=30) as http:
        for connections in counts:
            with NchanServer(workers=workers) as nchan:
                channel = unique("fanout")

                async def publish(
                    index: int, nchan: NchanServer = nchan, ch: str = channel
                ) -> None:
                    response = await http.post(
                        nchan.publish_url(ch),
                        content=encode(event_body(index)),
                        headers={"Content-Type": "application/json"},
                    )
                    response.raise_for_status()

                # The master's pid: RSS and CPU are summed over it and its workers
                # (the master's share is constant, so it cancels out per connection).
                target = Target(
                    "nchan", nchan.port, nchan.subscribe_path(channel), nchan.process.pid, publish
                )
                results.append(await measure(target, connections, singles, burst))
    return results


async def run_workers(
    connections: int = 10000, singles: int = 5, burst: int = 20, peer: bool = True
) -> dict[str, Any]:
    """The same fan-out with 1 and with 2 worker processes on one port, gateway and nchan.

    RSS and CPU are summed over every process of a server (the gateway's supervisor
    and its workers; nginx's master and its workers); the kernel spreads the
    connections over the workers (SO_REUSEPORT; nginx `listen … reuseport`).
    Same client program, same run, so the ratios hold under load.
    """
    raise_nofile_limit()
    result: dict[str, Any] = {"connections": connections}
    for workers in (1, 2):
        (result[f"workers_{workers}"],) = await run_gateway(
            [connections], singles, burst, None, workers=workers
        )
        if peer:
            (result[f"nchan_workers_{workers}"],) = await run_nchan(
                [connections], singles, burst, workers=workers
            )
    if peer:
        result["to_last_p50_ratio_gateway_over_nchan"] = {
            f"workers_{w}": _to_last_ratio(result[f"workers_{w}"], result[f"nchan_workers_{w}"])
            for w in (1, 2)
        }
    return result


def _to_last_ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float | None:
    """Gateway ÷ nchan, p50 over the single events of 'one event to the last client'."""
    a, b = ours["one_event_to_all_ms"]["p50_ms"], theirs["one_event_to_all_ms"]["p50_ms"]
    return round(a / b, 3) if b and math.isfinite(a) and math.isfinite(b) else None


async def run(
    counts: list[int] | None = None,
    singles: int = 5,
    burst: int = 20,
    profile_at: int | None = 5000,
    peer: bool = True,
) -> dict[str, Any]:
    """`peer`: also measure nchan (installed with apt when missing)."""
    counts = counts or [1000, 5000, 10000]
    limit = raise_nofile_limit()
    gateway = await run_gateway(counts, singles, burst, profile_at)
    nchan = await run_nchan(counts, singles, burst) if peer else []
    ratios = []
    for ours, other in zip(gateway, nchan, strict=False):
        if ours["delivered_per_s"] and other["delivered_per_s"]:
            ratio = round(ours["delivered_per_s"] / other["delivered_per_s"], 3)
        else:
            ratio = None
        ratios.append({"connections": ours["connections"], "delivered_per_s_ratio": ratio})
    return {
        "nofile_limit": limit,
        "singles": singles,
        "burst": burst,
        "gateway": gateway,
        "nchan": nchan,
        "gateway_vs_nchan": ratios,
    }
