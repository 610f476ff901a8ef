"""Poller test helpers: settings, executions written with plain SQL, a batch collector,
a running poll loop and an outage of one of its backends."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import REGISTRY

from services.poller.loop import run_poller
from services.poller.tick import poll_once
from shared.bus import Bus, Delivery
from shared.contracts import ExecutionBatch, RoutingKey
from shared.settings import PollerSettings
from testkit.factories import execution_summary
from testkit.tcp_proxy import TcpProxy
from testkit.waiting import wait_until

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"

# Flush markers use ids no test execution has.
_SENTINEL_IDS = itertools.count(10**15)


def poller_settings(
    database_url: str, amqp_url: str, exchange_name: str, **overrides: Any
) -> PollerSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": amqp_url,
        "exchange_name": exchange_name,
        "poller_interval_s": 0.02,
        "poller_batch_size": 50,
    }
    values.update(overrides)
    return PollerSettings(**values)


async def insert_executions(db: Db, ids: Iterable[int]) -> None:
    """New executions, Stage 1 only (not completed)."""
    await db.execute(
        """INSERT INTO executions (id, workflow_id, camera_id, location, camera_type,
                                   status, started_at)
           SELECT id, 'wf-1', 'sai-cam-node-07', 'Ridge', 'rtsp', 'success', now()
           FROM unnest($1::bigint[]) AS id""",
        list(ids),
    )


async def complete(db: Db, ids: Iterable[int], age_s: float = 0.0) -> None:
    """What Stage 2 does on success: results in, extracted_at = now() - age_s."""
    await db.execute(
        """UPDATE executions
           SET processing_stage = 'stage2', has_smoke = (id % 2 = 0), has_fire = false,
               alert_level = 'low', detection_count = 1, confidence = 0.8,
               telegram_sent = false, stopped_at = now(),
               extracted_at = now() - make_interval(secs => $2)
           WHERE id = ANY($1::bigint[])""",
        list(ids),
        float(age_s),
    )


async def broadcast_set(db: Db) -> set[int]:
    return {r["execution_id"] for r in await db.fetch("SELECT execution_id FROM broadcast_ids")}


async def drain(pool: asyncpg.Pool, bus: Bus, settings: PollerSettings) -> list[int]:
    """Tick until nothing inside the look-back is left to claim; return all ids published.

    An empty tick alone does not prove that: a batch can consist only of
    completions dropped as already broadcast.
    """
    published: list[int] = []
    while True:
        got = await poll_once(pool, bus, settings)
        published += got
        if not got and not await pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM broadcast_backlog
                              WHERE extracted_at >= now() - make_interval(secs => $1))""",
            float(settings.poller_lookback_s),
        ):
            return published


def cycle_errors(cause: str) -> float:
    """smokesignal_poller_cycle_errors_total{cause} so far in this process."""
    labels = {"cause": cause}
    return REGISTRY.get_sample_value("smokesignal_poller_cycle_errors_total", labels) or 0.0


@contextlib.asynccontextmanager
async def running_poller(
    pool: asyncpg.Pool, bus: Bus, settings: PollerSettings
) -> AsyncIterator[asyncio.Task[None]]:
    """`run_poller` in a task, stopped (and awaited) on leaving."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_poller(pool, bus, settings, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@contextlib.asynccontextmanager
async def outage(proxy: TcpProxy, cause: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Cut `proxy` (the poller's way to its broker or database) until leaving; yields
    `failing()`, which waits until the poll loop has failed two cycles for `cause`."""
    proxy.cut()
    at_cut = cycle_errors(cause)

    async def failing() -> None:
        await wait_until(lambda: cycle_errors(cause) >= at_cut + 2, f"failed cycles ({cause})")

    try:
        yield failing
    finally:
        proxy.restore()


class BatchCollector:
    """Every execution id received in executions.new batches, duplicates kept."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.batches: list[ExecutionBatch] = []
        self._sentinels: set[int] = set()

    @classmethod
    async def subscribe(cls, bus: Bus, name: str = "poller-test") -> BatchCollector:
        collector = cls()
        await bus.consume(
            f"{bus.exchange_name}.{name}",
            [RoutingKey.EXECUTIONS_NEW.value],
            collector._handle,
            durable=False,
            exclusive=True,
        )
        return collector

    async def _handle(self, delivery: Delivery) -> None:
        batch = delivery.message
        assert isinstance(batch, ExecutionBatch)
        ids = [summary.id for summary in batch.executions]
        if len(ids) == 1 and ids[0] >= 10**15:
            self._sentinels.add(ids[0])
            return
        self.batches.append(batch)
        self.ids.extend(ids)

    @property
    def counts(self) -> Counter[int]:
        return Counter(self.ids)

    def has_all(self, expected: Iterable[int]) -> bool:
        return set(expected) <= set(self.ids)

    async def wait_for(self, expected: Iterable[int], guard_s: float = 60) -> None:
        wanted = set(expected)
        await wait_until(
            lambda: self.has_all(wanted), f"ids {sorted(wanted)[:20]}…", guard_s=guard_s
        )

    async def flush(self, bus: Bus, guard_s: float = 30) -> None:
        """Return once everything confirmed before this call has been delivered here.

        A marker published after the publishers' confirms is queued behind their
        messages, and a queue delivers in order.
        """
        sentinel = next(_SENTINEL_IDS)
        marker = execution_summary(sentinel, workflow_id="flush", camera_id="flush", status="flush")
        await bus.publish(ExecutionBatch(executions=[marker], timestamp=datetime.now(UTC)))
        await wait_until(lambda: sentinel in self._sentinels, "flush marker", guard_s=guard_s)


def old_cursor_select(rows: Sequence[tuple[int, object]], cursor: int | None) -> list[int]:
    """The loop body of the seed's sse.ts (the buggy version the seed plan quotes).

    `rows` are (id, extracted_at) newest first.
    """
    new: list[int] = []
    for execution_id, extracted_at in rows:
        if execution_id == cursor:
            break  # "found where we left off" — and everything older is never looked at again
        if extracted_at is not None:
            new.append(execution_id)
    return new
