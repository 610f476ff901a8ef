"""Failover without a herd: N clients on gateway A, SIGKILL A, every client resumes on B.

Two gateway processes read the same event stream. N resuming clients
(bench/clients/resuming_client.py) connect to A; an observer connects to B. Events are
published at a steady rate throughout; A is killed with SIGKILL mid-stream. Each
client reconnects to B with its Last-Event-ID. Reported: resets (each is a REST
reload a dashboard would make), missing and duplicated events per client
against what the observer saw, and the time from the kill until every client
was resumed and until every client had the last event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from bench.clients.resuming_client import ResumingCrowd, check_exact
from bench.harness.infra import bench_database, delete_exchange, exchange_name, raise_nofile_limit
from bench.harness.infra import service_env as bench_service_env
from shared.bus import Bus
from shared.contracts import Stage2Complete
from testkit.factories import stage2_complete
from testkit.gateway import GatewayProcess as Gateway
from testkit.waiting import wait_until


def _event(index: int) -> Stage2Complete:
    return stage2_complete(
        index + 1,
        has_smoke=False,
        alert_level="none",
        detection_count=0,
        has_image=False,
        processing_time_ms=1.0,
    )


async def _until(done: Callable[[], bool], guard_s: float = 60) -> None:
    """Poll `done` (the clients' counters have no event to wait on); the guard stops a hang,
    and then the figures say what is missing."""
    with contextlib.suppress(AssertionError):
        await wait_until(done, "failover deliveries", guard_s=guard_s, poll_s=0.05)


async def failover(
    env: dict[str, str],
    bus: Bus,
    clients: int,
    *,
    rate_per_s: float = 20.0,
    before_s: float = 1.5,
    after_s: float = 3.0,
) -> dict[str, Any]:
    """Run one failover against gateways started from `env`; returns the figures."""
    a = await Gateway(env, heartbeat_interval_s=300).start()
    b = await Gateway(env, heartbeat_interval_s=300).start()
    crowd = ResumingCrowd([("127.0.0.1", a.port), ("127.0.0.1", b.port)], "/api/events", clients)
    observer = ResumingCrowd([("127.0.0.1", b.port)], "/api/events", 1)
    publishing = True
    published = 0

    async def publish() -> None:
        nonlocal published
        while publishing:
            await bus.publish(_event(published))
            published += 1
            await asyncio.sleep(1 / rate_per_s)

    try:
        connect_s = await crowd.connect_all()
        await observer.connect_all()
        publisher = asyncio.create_task(publish())
        await asyncio.sleep(before_s)
        killed_at = time.time()
        os.kill(a.pid, signal.SIGKILL)
        await asyncio.sleep(after_s)
        publishing = False
        await publisher
        # Until the observer has everything, then every client has what it has.
        await _until(lambda: len(observer.records[0].offsets) >= published)
        expected = observer.records[0].offsets
        last = expected[-1]
        await _until(lambda: crowd.received(last) >= clients)
        all_have_last_at = time.time()
        exact = check_exact(crowd.records, expected)
        resumed = [r.resumed_at for r in crowd.records if r.resumed_at is not None]
        return {
            "clients": clients,
            "connect_s": round(connect_s, 2),
            "events_published": published,
            "events_seen_by_observer": len(expected),
            "rate_per_s": rate_per_s,
            "resets": sum(r.resets for r in crowd.records),
            "rest_reloads_caused": crowd.rest_reloads,
            **exact,
            "clients_resumed": len(resumed),
            "all_resumed_after_kill_ms": round((max(resumed) - killed_at) * 1000, 1)
            if len(resumed) == clients
            else None,
            "median_resumed_after_kill_ms": round(
                (sorted(resumed)[len(resumed) // 2] - killed_at) * 1000, 1
            )
            if resumed
            else None,
            "clients_with_last_event": crowd.received(last),
            "all_had_last_event_after_kill_ms": round((all_have_last_at - killed_at) * 1000, 1),
        }
    finally:
        crowd.close()
        observer.close()
        a.stop()
        b.stop()


async def run(clients: int = 1000, before_s: float = 1.5, after_s: float = 3.0) -> dict[str, Any]:
    limit = raise_nofile_limit()
    exchange = exchange_name("failover")
    async with bench_database("failover") as database_url:
        env = bench_service_env(database_url, exchange)
        bus = Bus(env["AMQP_URL"], exchange)
        await bus.connect()
        try:
            result = await failover(env, bus, clients, before_s=before_s, after_s=after_s)
        finally:
            await bus.close()
            await delete_exchange(exchange)
    return {"nofile_limit": limit, **result}
