"""poll_once against real PostgreSQL and RabbitMQ: what is selected, claimed and published."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.poller.queries import CLAIM_SQL
from services.poller.tick import poll_once
from shared.bus import Bus
from shared.settings import PollerSettings
from testkit.explain import explain
from testkit.poller import (
    BatchCollector,
    broadcast_set,
    complete,
    drain,
    insert_executions,
    old_cursor_select,
    poller_settings,
)
from testkit.waiting import wait_until


@dataclass(frozen=True)
class Tick:
    """`poll_once` bound to the test's pool, bus and settings."""

    pool: asyncpg.Pool
    bus: Bus
    settings: PollerSettings

    async def tick(self) -> list[int]:
        return await poll_once(self.pool, self.bus, self.settings)


Ticker = Callable[..., Tick]


@pytest.fixture
def ticker(db_pool: asyncpg.Pool, bus: Bus, database_url: str, amqp_url: str) -> Ticker:
    """Factory: `ticker(**PollerSettings overrides)` -> a `Tick` on this test's servers."""

    def make(**overrides: Any) -> Tick:
        settings = poller_settings(database_url, amqp_url, bus.exchange_name, **overrides)
        return Tick(db_pool, bus, settings)

    return make


def old_cursor_poll(
    latest_newest_first: list[asyncpg.Record], last_known_id: int | None
) -> tuple[list[int], int | None]:
    """The seed's Bug 1 (sse.ts:540-562) in Python: newest first, break at the cursor."""
    rows = [(execution["id"], execution["extracted_at"]) for execution in latest_newest_first]
    new_executions = old_cursor_select(rows, last_known_id)
    if new_executions:
        last_known_id = new_executions[0]
    return new_executions, last_known_id


async def test_seed_scenario_late_completion_is_broadcast_where_the_old_cursor_misses_it(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    poller = ticker()
    collector = await BatchCollector.subscribe(bus)
    await insert_executions(db_pool, [200, 201])
    cursor: int | None = None
    ours: list[list[int]] = []
    old: list[list[int]] = []

    async def tick() -> None:
        nonlocal cursor
        ours.append(await poller.tick())
        latest = await db_pool.fetch(
            "SELECT id, extracted_at FROM executions ORDER BY id DESC LIMIT 50"
        )
        new, cursor = old_cursor_poll(latest, cursor)
        old.append(new)

    await tick()  # neither has finished Stage 2
    await complete(db_pool, [201])  # the fast one finishes first
    await tick()
    await complete(db_pool, [200])  # the slow one finishes later
    await tick()
    await tick()

    assert old == [[], [201], [], []], "the reference must reproduce the seed's bug"
    assert ours == [[], [201], [200], []]
    await collector.flush(bus)
    assert collector.ids == [201, 200]
    summary = collector.batches[1].executions[0]
    assert summary.id == 200
    assert summary.extracted_at is not None
    assert summary.processing_stage == "stage2"
    assert summary.alert_level == "low"
    assert summary.camera_id == "sai-cam-node-07"
    assert await broadcast_set(db_pool) == {200, 201}


async def test_completion_committed_late_with_an_older_extracted_at_is_published(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    """No cursor: a completion that commits after newer ones were broadcast is still found."""
    poller = ticker()
    await insert_executions(db_pool, [1, 2, 3])
    async with db_pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        await complete(slow, [1], age_s=120)  # extracted_at two minutes ago, not committed
        await complete(db_pool, [2, 3])
        assert await poller.tick() == [2, 3]
        await transaction.commit()
    assert await poller.tick() == [1]
    assert await poller.tick() == []


async def test_thousand_executions_completed_in_random_order_are_each_published_once(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    poller = ticker(poller_batch_size=40)
    collector = await BatchCollector.subscribe(bus)
    ids = list(range(1, 1001))
    await insert_executions(db_pool, ids)
    order = ids[:]
    random.Random(4).shuffle(order)
    returned: list[int] = []
    position = 0
    rng = random.Random(9)
    while position < len(order):
        step = rng.randint(1, 60)
        # Older extracted_at for some: completion time does not follow id or commit order.
        await complete(db_pool, order[position : position + step], age_s=rng.choice([0, 30, 600]))
        position += step
        for _ in range(rng.randint(0, 2)):
            returned += await poller.tick()
    returned += await drain(db_pool, bus, poller.settings)
    assert sorted(returned) == ids
    await collector.flush(bus)
    assert sorted(collector.ids) == ids
    assert all(len(batch.executions) <= 40 for batch in collector.batches)
    assert await broadcast_set(db_pool) == set(ids)
    assert await db_pool.fetchval("SELECT count(*) FROM broadcast_backlog") == 0


async def test_incomplete_and_failed_executions_are_not_published(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    poller = ticker()
    await insert_executions(db_pool, [1, 2, 3])
    await db_pool.execute(
        """UPDATE executions SET processing_stage = 'failed', stage2_error = 'bad base64',
                                 retry_count = 3 WHERE id = 2"""
    )
    await complete(db_pool, [3])
    assert await poller.tick() == [3]
    assert await poller.tick() == []


async def test_completion_outside_the_lookback_is_not_published(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    """The documented look-back limitation (docs/POLLER.md)."""
    poller = ticker(poller_lookback_s=3600)
    await insert_executions(db_pool, [1, 2])
    await complete(db_pool, [1], age_s=3600 + 120)  # committed now, completed 62 min ago
    await complete(db_pool, [2], age_s=3600 - 120)
    assert await poller.tick() == [2]
    assert await poller.tick() == []
    assert await broadcast_set(db_pool) == {2}


async def test_completing_again_after_the_broadcast_does_not_republish(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    poller = ticker()
    await insert_executions(db_pool, [5])
    await complete(db_pool, [5], age_s=10)
    assert await poller.tick() == [5]
    await complete(db_pool, [5])  # Stage 2 ran again: a new extracted_at
    assert await db_pool.fetchval("SELECT count(*) FROM broadcast_backlog") == 0
    assert await poller.tick() == []


async def test_a_completion_racing_its_own_claim_is_dropped_not_republished(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    """Stage 2 completes again while a poller's claim of the same execution is uncommitted."""
    poller = ticker()
    await insert_executions(db_pool, [5, 6])
    await complete(db_pool, [5], age_s=10)
    async with db_pool.acquire() as claimer:
        claim = claimer.transaction()
        await claim.start()
        assert [r["id"] for r in await claimer.fetch(CLAIM_SQL, 86400.0, 10)] == [5]
        # The re-completion cannot see the uncommitted claim; it waits for its row lock.
        again = asyncio.create_task(complete(db_pool, [5]))
        await _until_waiting_for_a_lock(db_pool)
        await claim.commit()
        await again
    assert await db_pool.fetchval("SELECT count(*) FROM broadcast_backlog") == 1  # stale row
    await complete(db_pool, [6])
    assert await poller.tick() == [6]
    assert await poller.tick() == []
    assert await db_pool.fetchval("SELECT count(*) FROM broadcast_backlog") == 0


async def _until_waiting_for_a_lock(db_pool: asyncpg.Pool) -> None:
    async def waiting() -> bool:
        return bool(
            await db_pool.fetchval(
                """SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                  WHERE datname = current_database()
                                    AND wait_event_type = 'Lock')"""
            )
        )

    await wait_until(waiting, what="re-completion blocked on the claim")


async def test_executions_marked_broadcast_directly_leave_the_backlog(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    """broadcast_backlog stays exactly "completed minus broadcast_ids" (seeded state, restores)."""
    poller = ticker()
    await insert_executions(db_pool, [1, 2, 3])
    await complete(db_pool, [1, 2, 3])
    await db_pool.execute("INSERT INTO broadcast_ids (execution_id) VALUES (1), (3)")
    backlog = await db_pool.fetch("SELECT execution_id FROM broadcast_backlog")
    assert [r["execution_id"] for r in backlog] == [2]
    assert await poller.tick() == [2]


async def test_a_claim_in_progress_is_skipped_not_waited_for(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    """Two replicas claiming at once never share a row (FOR UPDATE SKIP LOCKED)."""
    poller = ticker(poller_batch_size=100)
    ids = list(range(1, 11))
    await insert_executions(db_pool, ids)
    for offset, execution_id in enumerate(ids):  # distinct ages: a known claim order
        await complete(db_pool, [execution_id], age_s=100 - offset)
    async with db_pool.acquire() as other_replica, other_replica.transaction():
        held = [r["id"] for r in await other_replica.fetch(CLAIM_SQL, 86400.0, 4)]
        assert held == [1, 2, 3, 4]
        assert await poller.tick() == [5, 6, 7, 8, 9, 10]
    assert await poller.tick() == []
    assert await broadcast_set(db_pool) == set(ids)


async def test_a_row_that_breaks_the_contract_is_recorded_and_the_rest_published(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    poller = ticker()
    collector = await BatchCollector.subscribe(bus)
    # The schema forbids this row; lift the check in this test's own database to make one.
    await db_pool.execute("ALTER TABLE executions DROP CONSTRAINT executions_alert_level_check")
    await insert_executions(db_pool, [1, 2, 3])
    await complete(db_pool, [1, 2, 3])
    await db_pool.execute("UPDATE executions SET alert_level = 'extreme' WHERE id = 2")
    assert await poller.tick() == [1, 3]
    assert await poller.tick() == []
    rejected = await db_pool.fetch("SELECT source, error FROM rejected_inputs")
    assert len(rejected) == 1
    assert rejected[0]["source"] == "poller"
    assert "execution 2" in rejected[0]["error"]
    assert "alert_level" in rejected[0]["error"]
    await collector.flush(bus)
    assert collector.ids == [1, 3]


async def test_explain_claim_shows_the_plan_and_changes_nothing(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    poller = ticker()
    await insert_executions(db_pool, [1, 2])
    await complete(db_pool, [1, 2])
    async with db_pool.acquire() as conn:
        lines = await explain(
            conn,
            CLAIM_SQL,
            float(poller.settings.poller_lookback_s),
            poller.settings.poller_batch_size,
        )
    plan = "\n".join(lines)
    assert "Insert on broadcast_ids" in plan
    assert "broadcast_backlog" in plan
    assert "Execution Time" in plan
    assert await broadcast_set(db_pool) == set()
    assert await poller.tick() == [1, 2]


async def test_a_deleted_or_reset_execution_leaves_the_backlog_unsent(
    db_pool: asyncpg.Pool, bus: Bus, ticker: Ticker
) -> None:
    poller = ticker()
    await insert_executions(db_pool, [1, 2, 3])
    await complete(db_pool, [1, 2, 3])
    await db_pool.execute("DELETE FROM executions WHERE id = 1")
    await db_pool.execute("UPDATE executions SET extracted_at = NULL WHERE id = 2")
    assert await poller.tick() == [3]
    assert await db_pool.fetchval("SELECT count(*) FROM broadcast_backlog") == 0
    assert await broadcast_set(db_pool) == {3}
