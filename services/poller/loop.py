"""The poll loop: a cycle every interval, back-to-back while a backlog drains."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg

from services.poller.metrics import BATCH_SIZE, CYCLE_ERRORS, CYCLE_SECONDS, EXECUTIONS_BROADCAST
from services.poller.tick import CycleTimings, poll_once
from services.poller.trim import trim_poller_state
from shared.backoff import sleep_unless_stopped
from shared.bus import Bus, BusError
from shared.db import DATABASE_ERRORS
from shared.settings import PollerSettings
from shared.waits import StampedEvent, wait_any

log = logging.getLogger(__name__)

# NOTIFY channel of a Stage 2 commit that put an execution in the backlog (migration 0050).
BACKLOG_CHANNEL = "broadcast_backlog"


# Cycles that may overlap: the next one claims as soon as the previous one has
# sent its batch, while that one still waits for the broker's confirm and commits
# (the confirm and the commit are most of a cycle; a completion that arrives
# then need not wait for them). SKIP LOCKED keeps the claims disjoint, exactly
# as between two replicas.
PIPELINE_DEPTH = 2


async def run_poller(
    pool: asyncpg.Pool,
    bus: Bus,
    settings: PollerSettings,
    stop: asyncio.Event,
    on_published: Callable[[list[int]], None] | None = None,
    wake: asyncio.Event | None = None,
) -> None:
    """Poll until `stop` is set; the cycles in progress always finish (commit or rollback).

    A cycle runs every `poller_interval_s`, and at once when `wake` is set (the
    NOTIFY of a Stage 2 commit, see `BACKLOG_CHANNEL`). There is no coalescing
    timer: a new cycle starts only once the previous one has sent its batch, so
    what commits while a cycle claims and sends (a few ms) goes out together in
    the next one, and a burst becomes a few batches, not one per completion.
    """
    # Trimming runs beside the cycles: a large first trim must not hold them up.
    trimmer = asyncio.create_task(_trim_every_interval(pool, settings, stop))
    running: list[asyncio.Task[list[int]]] = []

    def reap() -> None:
        """Hand on what finished cycles published (and raise what one raised)."""
        for cycle in [c for c in running if c.done()]:
            running.remove(cycle)
            ids = cycle.result()
            if ids and on_published is not None:
                on_published(ids)

    try:
        while not stop.is_set():
            notified_at = wake.first_set_at if isinstance(wake, StampedEvent) else None
            if wake is not None:
                wake.clear()  # a NOTIFY from now on makes the next cycle start at once
            sending = asyncio.Event()
            sent: list[int] = [0]

            def on_send(
                count: int, sent: list[int] = sent, sending: asyncio.Event = sending
            ) -> None:
                sent[0] = count
                sending.set()

            cycle = asyncio.create_task(_cycle(pool, bus, settings, notified_at, on_send))
            running.append(cycle)
            # Until this cycle has sent its batch, or ended without one.
            await wait_any(sending, _done_event(cycle), max_wait_s=None)
            reap()
            if sent[0] < settings.poller_batch_size:
                # A full batch means more is waiting: go again at once instead of sleeping.
                events = (stop,) if wake is None else (stop, wake)
                await wait_any(*events, max_wait_s=settings.poller_interval_s)
            reap()
            if len(running) >= PIPELINE_DEPTH:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                reap()
    finally:
        if running:
            await asyncio.wait(running)
            reap()
        trimmer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trimmer


def _done_event(task: asyncio.Task[list[int]]) -> asyncio.Event:
    done = asyncio.Event()
    task.add_done_callback(lambda _task: done.set())
    return done


async def _cycle(
    pool: asyncpg.Pool,
    bus: Bus,
    settings: PollerSettings,
    notified_at: float | None,
    on_send: Callable[[int], None],
) -> list[int]:
    started_at = time.time()
    timings = CycleTimings()
    try:
        ids = await poll_once(pool, bus, settings, timings, on_send)
    except BusError as exc:
        CYCLE_ERRORS.labels("bus").inc()
        log.warning("publish failed; claim rolled back, retrying", extra={"error": str(exc)})
        return []
    except DATABASE_ERRORS as exc:  # rolled back; the next cycle retries
        CYCLE_ERRORS.labels("database").inc()
        log.warning("database unavailable; retrying", extra={"error": repr(exc)})
        return []
    CYCLE_SECONDS.observe(timings.committed - timings.started)
    if ids:
        EXECUTIONS_BROADCAST.inc(len(ids))
        BATCH_SIZE.observe(len(ids))
        # The per-hop split (bench/cases/latency.py reads it): when the NOTIFY
        # that started this cycle arrived, when the cycle began, each phase.
        log.info(
            "published executions.new batch",
            extra={
                "execution_ids": ids,
                "count": len(ids),
                "notified_at": notified_at,
                "started_at": started_at,
                **timings.split_ms(),
            },
        )
    return ids


async def _trim_every_interval(
    pool: asyncpg.Pool, settings: PollerSettings, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await trim_poller_state(pool, settings)
        except DATABASE_ERRORS as exc:
            log.warning("trim failed; retrying next interval", extra={"error": repr(exc)})
        await sleep_unless_stopped(stop, settings.poller_trim_interval_s)
