"""`python -m bench.experiments.fanout_variants [N]`: where the gateway's fan-out time and
memory go, measured from outside the service.

1. The stock gateway and the same gateway without sse-starlette's per-send
   timeout scope, each at N connections (the fan-out benchmark's procedure).
2. Python allocations per connection (tracemalloc) at N connections, by site.
Writes bench/results/fanout_variants.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import fanout
from bench.infra import (
    bench_database,
    delete_exchange,
    exchange_name,
    raise_nofile_limit,
    rss_kib,
    service_env,
)
from bench.sse_load import FanoutClient
from shared.bus import Bus
from testkit.gateway import GatewayProcess as Gateway

VARIANT = "bench.experiments.gateway_variant"
OUT = Path(__file__).parents[1] / "results" / "fanout_variants.json"


def _read_dump(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


async def _snapshot(gateway: Gateway, path: Path) -> dict[str, Any]:
    """Signal the gateway to dump its allocations to `path` and parse the dump."""
    os.kill(gateway.pid, signal.SIGUSR1)
    text = None
    for _ in range(300):
        await asyncio.sleep(0.2)
        text = _read_dump(path)
        if text is not None:
            break
    assert text is not None, "no allocation dump"
    lines = text.splitlines()
    total = int(lines[0].split()[1])
    sites = [line.split(" ", 2) for line in lines[1:]]
    return {"total": total, "sites": {site: int(size) for size, _, site in sites}}


async def allocations(connections: int) -> dict[str, Any]:
    exchange = exchange_name("alloc")
    trace = Path(tempfile.mkdtemp()) / "tracemalloc.txt"
    async with bench_database("alloc") as database_url:
        env = {**service_env(database_url, exchange), "BENCH_TRACEMALLOC": str(trace)}
        gateway = Gateway(env, VARIANT, heartbeat_interval_s=300)
        await gateway.start()
        bus = Bus(env["AMQP_URL"], exchange)
        await bus.connect()
        client = FanoutClient(
            "127.0.0.1", gateway.port, "/api/events", connections, fanout.MARKER, 1
        )
        try:
            before = await _snapshot(gateway, Path(f"{trace}.1"))
            rss_before = rss_kib(gateway.pid)
            await client.connect_all()
            await bus.publish(fanout.event_body(0))
            await client.wait_for(0, within_s=60)
            after = await _snapshot(gateway, Path(f"{trace}.2"))
            rss_after = rss_kib(gateway.pid)
        finally:
            client.close()
            await bus.close()
            gateway.stop()
            await delete_exchange(exchange)
    per_site = {
        site: round((size - before["sites"].get(site, 0)) / connections)
        for site, size in after["sites"].items()
    }
    top = sorted(per_site.items(), key=lambda kv: -kv[1])[:20]
    return {
        "connections": connections,
        "rss_per_connection_kib": round((rss_after - rss_before) / connections, 1),
        "python_heap_per_connection_bytes": round((after["total"] - before["total"]) / connections),
        "top_sites_bytes_per_connection": dict(top),
    }


def gc_pauses(path: Path) -> dict[str, Any]:
    pauses = [
        (int(g), float(ms)) for g, ms in (line.split() for line in path.read_text().splitlines())
    ]
    by_generation: dict[str, Any] = {}
    for generation in (0, 1, 2):
        ms = [p for g, p in pauses if g == generation]
        by_generation[f"gen{generation}"] = {
            "collections": len(ms),
            "total_ms": round(sum(ms), 1),
            "max_ms": max(ms, default=0.0),
        }
    return by_generation


async def run(connections: int) -> dict[str, Any]:
    raise_nofile_limit()
    gc_log = Path(tempfile.mkdtemp()) / "gc.log"
    # No py-spy here: it would overwrite the fan-out benchmark's profile.
    stock = await fanout.run_gateway(
        [connections], 5, 20, None, VARIANT, {"BENCH_GC_LOG": str(gc_log)}
    )
    bare = await fanout.run_gateway(
        [connections], 5, 20, None, VARIANT, {"BENCH_NO_SEND_TIMEOUT": "1"}
    )
    return {
        "stock": stock[0],
        "stock_gc_pauses": gc_pauses(gc_log),
        "no_send_timeout": bare[0],
        "allocations": await allocations(connections),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    result = asyncio.run(run(n))
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for name in ("stock", "no_send_timeout"):
        r = result[name]
        print(name, r["one_event"], r["delivered_per_s"], r["server_cpu_s_per_1k_deliveries"])
    print(json.dumps(result["stock_gc_pauses"]))
    print(json.dumps(result["allocations"], indent=1))
