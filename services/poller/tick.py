"""One poll cycle: claim unbroadcast completions and publish them as one batch."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import ValidationError

from services.poller.metrics import REJECTED
from services.poller.queries import ASYNC_COMMIT_SQL, CLAIM_SQL, RECORD_REJECTED_SQL
from shared.bus import Bus
from shared.contracts import ExecutionBatch, ExecutionSummary
from shared.executions import summary_from_row
from shared.settings import PollerSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CycleTimings:
    """When one cycle's phases ended (time.perf_counter), for the per-hop split in its log."""

    started: float = 0.0
    claimed: float = 0.0
    published: float = 0.0
    committed: float = 0.0

    def split_ms(self) -> dict[str, float]:
        return {
            "claim_ms": round((self.claimed - self.started) * 1000, 3),
            "publish_ms": round((self.published - self.claimed) * 1000, 3),
            "commit_ms": round((self.committed - self.published) * 1000, 3),
        }


async def poll_once(
    pool: asyncpg.Pool,
    bus: Bus,
    settings: PollerSettings,
    timings: CycleTimings | None = None,
    on_send: Callable[[int], None] | None = None,
) -> list[int]:
    """Claim and publish one batch; return the ids published (oldest completion first).

    The claim and the publish share one transaction: if the publish fails
    (BusError, raised to the caller) nothing stays claimed and the next cycle
    retries the same executions. `timings`, when given, gets each phase's end;
    `on_send(count)` is called as the batch is handed to the broker (the poll
    loop may then start the next cycle while this one awaits the confirm).
    """
    stamps = timings if timings is not None else CycleTimings()
    stamps.started = time.perf_counter()
    try:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                CLAIM_SQL, float(settings.poller_lookback_s), settings.poller_batch_size
            )
            stamps.claimed = time.perf_counter()
            if not rows:
                return []
            summaries = await _summaries_or_record(conn, rows)
            if summaries and on_send is not None:
                on_send(len(summaries))
            await _publish(
                conn, bus, summaries, async_commit=not settings.poller_synchronous_commit
            )
            stamps.published = time.perf_counter()
    finally:
        stamps.committed = time.perf_counter()  # rolled back or committed
    return [summary.id for summary in summaries]


async def _publish(
    conn: PoolConnectionProxy[asyncpg.Record],
    bus: Bus,
    summaries: list[ExecutionSummary],
    *,
    async_commit: bool,
) -> None:
    """Publish the batch (with its confirm) and, meanwhile, turn off the commit's WAL-flush wait.

    Skipping the flush wait (~half a cycle) is safe: a claim lost in a database
    crash only means that batch is published again, never that one is missed.
    The SET LOCAL travels while the publish waits for its confirm: before the
    publish it was a round trip on the path to the gateways, after the confirm
    it widened the at-least-once window (confirm → commit). Both finish before
    the caller commits; a failed publish is raised (BusError) once both are done,
    so the connection is idle when the transaction rolls back.
    """
    steps: list[Awaitable[object]] = []
    if async_commit:
        steps.append(conn.execute(ASYNC_COMMIT_SQL))
    if summaries:
        steps.append(bus.publish(ExecutionBatch(executions=summaries, timestamp=datetime.now(UTC))))
    results = await asyncio.gather(*steps, return_exceptions=True)
    errors = [result for result in results if isinstance(result, BaseException)]
    if errors:
        raise errors[-1]  # the publish's, when both failed: the cycle failed on the bus


async def _summaries_or_record(
    conn: PoolConnectionProxy[asyncpg.Record], rows: list[asyncpg.Record]
) -> list[ExecutionSummary]:
    """Valid rows become summaries; an invalid row is recorded and left out, not retried."""
    summaries: list[ExecutionSummary] = []
    for row in rows:
        try:
            summaries.append(summary_from_row(dict(row)))
        except ValidationError as exc:
            error = f"execution {row['id']} does not satisfy ExecutionSummary: {exc}"
            log.error(
                "claimed execution is not publishable; recorded in rejected_inputs",
                extra={"execution_id": row["id"], "error": str(exc)[:2000]},
            )
            await conn.execute(RECORD_REJECTED_SQL, error[:4000], repr(dict(row))[:2000])
            REJECTED.inc()
    return summaries
