"""Property: for any interleaving of completions and ticks, everything completed inside
the look-back is published exactly once, and nothing else is.

Completions run in their own transactions and may stay open across ticks, commit
late (with an extracted_at older than what was already broadcast), roll back, or
complete an execution again. The model is a plain set: which executions have a
committed completion, and which of them complete inside the look-back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.poller.tick import poll_once
from shared.bus import Bus
from testkit.poller import (
    BatchCollector,
    complete,
    drain,
    insert_executions,
    poller_settings,
)

EXECUTIONS = 8
LOOKBACK_S = 3600.0
MAX_OPEN_TRANSACTIONS = 3
# Ages well clear of the look-back edge, so the few seconds a test takes cannot move one across.
INSIDE_AGES_S = st.integers(0, 50 * 60)
OUTSIDE_AGES_S = st.integers(70 * 60, 48 * 3600)

execution_ids = st.integers(1, EXECUTIONS)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("complete"), execution_ids, st.integers(0, 50 * 60)),
        st.tuples(st.just("begin"), execution_ids, st.integers(0, 50 * 60)),
        st.tuples(st.just("commit"), st.integers(0, MAX_OPEN_TRANSACTIONS - 1)),
        st.tuples(st.just("rollback"), st.integers(0, MAX_OPEN_TRANSACTIONS - 1)),
        st.just(("tick",)),
    ),
    min_size=4,
    max_size=40,
)


@dataclass
class OpenCompletion:
    execution_id: int
    conn: PoolConnectionProxy[asyncpg.Record]
    transaction: Transaction


@settings(
    max_examples=100,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    outside=st.sets(execution_ids),
    batch_size=st.integers(1, EXECUTIONS + 2),
    ops=operations,
    outside_age_s=OUTSIDE_AGES_S,
)
async def test_every_completion_inside_the_lookback_is_published_exactly_once(
    db_pool: asyncpg.Pool,
    bus: Bus,
    database_url: str,
    amqp_url: str,
    outside: set[int],
    batch_size: int,
    ops: list[tuple[object, ...]],
    outside_age_s: int,
) -> None:
    config = poller_settings(
        database_url,
        amqp_url,
        bus.exchange_name,
        poller_lookback_s=LOOKBACK_S,
        poller_batch_size=batch_size,
    )
    collector = await _collector(bus)
    seen_before = len(collector.ids)
    await db_pool.execute(
        "DELETE FROM executions; DELETE FROM broadcast_ids; DELETE FROM broadcast_backlog"
    )
    await insert_executions(db_pool, range(1, EXECUTIONS + 1))

    def age(execution_id: int, inside_age_s: object) -> float:
        # Each execution completes either always inside or always outside the look-back.
        return float(outside_age_s if execution_id in outside else inside_age_s)  # type: ignore[arg-type]

    committed: set[int] = set()
    published: list[int] = []
    open_completions: list[OpenCompletion] = []
    try:
        for op in ops:
            locked = {c.execution_id for c in open_completions}
            kind = op[0]
            if kind == "complete" and op[1] not in locked:
                execution_id = int(op[1])  # type: ignore[call-overload]
                await complete(db_pool, [execution_id], age(execution_id, op[2]))
                committed.add(execution_id)
            elif kind == "begin" and op[1] not in locked:
                if len(open_completions) < MAX_OPEN_TRANSACTIONS:
                    execution_id = int(op[1])  # type: ignore[call-overload]
                    open_completions.append(
                        await _begin(db_pool, execution_id, age(execution_id, op[2]))
                    )
            elif kind in ("commit", "rollback") and open_completions:
                pending = open_completions.pop(int(op[1]) % len(open_completions))  # type: ignore[call-overload]
                if kind == "commit":
                    await pending.transaction.commit()
                    committed.add(pending.execution_id)
                else:
                    await pending.transaction.rollback()
                await db_pool.release(pending.conn)
            elif kind == "tick":
                got = await poll_once(db_pool, bus, config)
                assert set(got) <= committed - outside, "published something not completed inside"
                published += got
                if batch_size >= EXECUTIONS:
                    # One tick sees every visible completion: none may be left behind.
                    left_behind = committed - outside - locked - set(published)
                    assert not left_behind, f"tick skipped {left_behind}"
        while open_completions:
            pending = open_completions.pop()
            await pending.transaction.commit()
            committed.add(pending.execution_id)
            await db_pool.release(pending.conn)
        published += await drain(db_pool, bus, config)
    finally:
        for pending in open_completions:
            await pending.transaction.rollback()
            await db_pool.release(pending.conn)

    assert Counter(published) == Counter(committed - outside)
    await collector.flush(bus)
    assert sorted(collector.ids[seen_before:]) == sorted(published)


_collectors: dict[str, BatchCollector] = {}


async def _collector(bus: Bus) -> BatchCollector:
    """One consumer per test (per exchange), shared by its examples."""
    if bus.exchange_name not in _collectors:
        _collectors.clear()
        _collectors[bus.exchange_name] = await BatchCollector.subscribe(bus)
    return _collectors[bus.exchange_name]


async def _begin(db_pool: asyncpg.Pool, execution_id: int, age_s: float) -> OpenCompletion:
    conn = await db_pool.acquire()
    transaction = conn.transaction()
    await transaction.start()
    await complete(conn, [execution_id], age_s)
    return OpenCompletion(execution_id, conn, transaction)
