"""What each layer of the SSE stack costs per idle connection (RSS), nchan beside it.

For every variant of bench/clients/layer_server.py, the real gateway twice and
nchan: a fresh server process, RSS with no client, N idle SSE connections opened
by the same client program (bench/sse_load.py), RSS again; (after - before) / N.

The gateway rows: `gateway` is `GET /api/events` as clients send it, served by the
lean path below uvicorn (services/gateway/front.py: front protocol + hub, the app's
auth and middleware run once per connection); `gateway_via_uvicorn` asks for
`/api/%65vents`, which the front protocol leaves to uvicorn and the router still
maps to the stream: the same route through uvicorn and its task-per-stream ASGI
response (the gateway before the lean path), in the same run.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from bench.clients.sse_load import FanoutClient
from bench.harness.infra import (
    bench_database,
    delete_exchange,
    exchange_name,
    raise_nofile_limit,
    rss_kib,
    service_env,
)
from bench.harness.nchan import NchanServer
from testkit.gateway import GatewayProcess
from testkit.net import free_port

VARIANTS = ("protocol", "uvicorn", "starlette", "sse_starlette")
GATEWAY_PATHS = {"gateway": "/api/events", "gateway_via_uvicorn": "/api/%65vents"}
SETTLE_S = 1.0  # after connecting, before reading RSS (`--quick`: shorter)


async def _per_connection(
    port: int, path: str, pid: int, connections: int, settle_s: float
) -> dict[str, Any]:
    before = rss_kib(pid)
    client = FanoutClient("127.0.0.1", port, path, connections, b"never", 1)
    try:
        await client.connect_all()
        await asyncio.sleep(settle_s)
        after = rss_kib(pid)
    finally:
        client.close()
    return {
        "connections": connections,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / connections, 2),
    }


async def _variant(variant: str, connections: int, settle_s: float) -> dict[str, Any]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.clients.layer_server",
        variant,
        str(port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(min(0.3, settle_s))
        figures = await _per_connection(port, "/", proc.pid, connections, settle_s)
        return {"variant": variant, **figures}
    finally:
        proc.kill()  # a throwaway server: no graceful shutdown to wait for
        await proc.wait()


async def run(
    connections: int = 5000, peer: bool = True, settle_s: float = SETTLE_S
) -> dict[str, Any]:
    """`peer`: also measure nchan (installed with apt when missing)."""
    limit = raise_nofile_limit()
    results = [await _variant(variant, connections, settle_s) for variant in VARIANTS]
    for variant, path in GATEWAY_PATHS.items():
        exchange = exchange_name("layers")
        async with bench_database("layers") as database_url:
            env = service_env(database_url, exchange)
            gateway = GatewayProcess(env, heartbeat_interval_s=300)  # one worker (service_env)
            await gateway.start()
            try:
                figures = await _per_connection(
                    gateway.port, path, gateway.pid, connections, settle_s
                )
                results.append({"variant": variant, **figures})
            finally:
                gateway.stop()
                await delete_exchange(exchange)
    if peer:
        with NchanServer() as nchan:
            figures = await _per_connection(
                nchan.port,
                nchan.subscribe_path("layers"),
                nchan.worker_pid(),
                connections,
                settle_s,
            )
            results.append({"variant": "nchan", **figures})
    return {"nofile_limit": limit, "variants": results}
