"""SSE clients that connect and vanish without closing leave nothing behind in the gateway.

The gateway runs as a subprocess (testkit/probed_gateway.py: the real
entry point plus GET /debug/state). In each round 1,000 raw sockets open GET
/api/events, wait for the `connection` event (the client is registered), and
then disappear: half with a TCP reset (SO_LINGER 0), half with a bare FIN and
no HTTP goodbye, while bus events keep being fanned out. Measured between
rounds, from outside:
RSS (/proc/<pid>/status), open file descriptors (/proc/<pid>/fd), the
`gateway_sse_clients` metric, asyncio tasks and GC-tracked objects. A client
that stays connected throughout gets every event. Bounds are generous: they
catch a leak per client, not allocator noise.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.bus import Bus
from testkit.factories import stage2_complete
from testkit.net import free_port, wait_http_ready
from testkit.pipeline import READY_TIMEOUT_S, pipeline_env
from testkit.processes import REPO_ROOT, ServiceProcess
from testkit.sse import SseRecorder

CLIENTS_PER_ROUND = 1000
ROUNDS = 2
CONNECT_CONCURRENCY = 100
WAIT_S = 120.0  # deadlock guard only
ARTIFACT = REPO_ROOT / "artifacts" / "reliability-sse-resources.json"
# Generous: a leak of 8 KB per vanished client would cross it over the measured rounds.
RSS_GROWTH_BOUND_KB = 8 * ROUNDS * CLIENTS_PER_ROUND
# Fewer than one object per vanished client (the replay buffer keeps the events published).
GC_OBJECTS_GROWTH_BOUND = ROUNDS * CLIENTS_PER_ROUND
TASKS_GROWTH_BOUND = 2
FDS_GROWTH_BOUND = 5

REQUEST = (
    b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n\r\n"
)


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match[1])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def open_stream(port: int) -> asyncio.StreamWriter:
    """Connect and read until the `connection` event: the hub has registered this client."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await writer.drain()
    received = b""
    while b"event: connection" not in received:
        chunk = await asyncio.wait_for(reader.read(4096), WAIT_S)
        if not chunk:
            raise ConnectionError(f"stream closed early: {received[:300]!r}")
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:300]
    return writer


def vanish(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    """Drop the connection without any goodbye: RST (linger 0) or a bare FIN."""
    if reset:
        sock: socket.socket = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def connect_many(port: int, count: int) -> list[asyncio.StreamWriter]:
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> asyncio.StreamWriter:
        async with limit:
            return await open_stream(port)

    return await asyncio.gather(*(one() for _ in range(count)))


class GatewayProbe:
    def __init__(self, base_url: str, pid: int) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=WAIT_S)
        self.pid = pid

    async def connected_clients(self) -> int:
        metrics = (await self.http.get("/metrics")).text
        match = re.search(r"^gateway_sse_clients (\S+)$", metrics, re.MULTILINE)
        assert match, metrics
        return int(float(match[1]))

    async def wait_clients(self, expected: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while (count := await self.connected_clients()) != expected:
            if loop.time() > deadline:
                raise AssertionError(f"gateway_sse_clients stays {count}, expected {expected}")
            await asyncio.sleep(0.1)

    async def measure(self) -> dict[str, int]:
        state = (await self.http.get("/debug/state")).json()
        return {
            "rss_kb": rss_kb(self.pid),
            "open_fds": open_fds(self.pid),
            "sse_clients": await self.connected_clients(),
            "tasks": state["tasks"],
            "gc_objects": state["gc_objects"],
        }


@pytest.mark.timeout(600)
async def test_vanishing_sse_clients_leave_no_memory_tasks_or_sockets_behind(
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
    bus: Bus,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = pipeline_env(
        service_env, image_dir=tmp_path / "images", gateway_port=port, LOG_LEVEL="WARNING"
    )
    gateway = service_process(["testkit.probed_gateway"], env, "gateway")
    base_url = f"http://127.0.0.1:{port}"
    await wait_http_ready(base_url, gateway, timeout_s=READY_TIMEOUT_S)
    assert gateway.proc is not None
    probe = GatewayProbe(base_url, gateway.proc.pid)
    published = 0

    async def churn(count: int) -> dict[str, int]:
        """`count` clients connect, see events, and vanish; returns the figures at the peak."""
        nonlocal published
        writers = await connect_many(port, count)
        await probe.wait_clients(count + 1)  # + the watcher
        peak = await probe.measure()
        for n, writer in enumerate(writers):
            vanish(writer, reset=n % 2 == 0)
            if n % 100 == 0:  # fan-out goes on while they disappear
                published += 1
                await bus.publish(stage2_complete(published))
        await probe.wait_clients(1)
        return peak

    async def all_delivered(watcher: SseRecorder) -> None:
        await watcher.wait_for(
            lambda w: len(w.of("etl:stage2:complete")) == published, "the round's events"
        )

    figures: dict[str, Any] = {}
    async with SseRecorder(base_url) as watcher:
        figures["idle"] = await probe.measure()
        # A first round takes the process to its high-water mark (the allocator keeps
        # freed memory for reuse); the measured rounds after it must not climb further.
        figures["warm_up_peak"] = await churn(CLIENTS_PER_ROUND)
        # Measure at rest: the round's events delivered (their consumer tasks are
        # transient; counted mid-flight they once looked like 10 leaked tasks).
        await all_delivered(watcher)
        before = figures["before"] = await probe.measure()
        for round_ in range(1, ROUNDS + 1):
            figures[f"round_{round_}_peak"] = await churn(CLIENTS_PER_ROUND)
            await all_delivered(watcher)
            figures[f"after_round_{round_}"] = await probe.measure()
        await watcher.wait_for(
            lambda w: len(w.of("etl:stage2:complete")) == published, "every event at the watcher"
        )
        received = [e.data["execution_id"] for e in watcher.of("etl:stage2:complete")]

    after = figures[f"after_round_{ROUNDS}"]
    figures["bounds"] = {
        "rss_growth_kb": RSS_GROWTH_BOUND_KB,
        "gc_objects_growth": GC_OBJECTS_GROWTH_BOUND,
        "tasks_growth": TASKS_GROWTH_BOUND,
        "open_fds_growth": FDS_GROWTH_BOUND,
    }
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    assert received == list(range(1, published + 1))  # the survivor missed nothing
    assert after["sse_clients"] == before["sse_clients"] == 1
    assert after["tasks"] <= before["tasks"] + TASKS_GROWTH_BOUND, figures
    assert after["open_fds"] <= before["open_fds"] + FDS_GROWTH_BOUND, figures
    assert after["gc_objects"] - before["gc_objects"] < GC_OBJECTS_GROWTH_BOUND, figures
    assert after["rss_kb"] - before["rss_kb"] < RSS_GROWTH_BOUND_KB, figures
    assert gateway.running
