"""Trimming by age: old broadcast ids go, nothing inside the look-back is ever dropped."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest

from services.poller import trim
from services.poller.trim import trim_poller_state
from shared.bus import Bus
from shared.settings import PollerSettings
from testkit.poller import (
    broadcast_set,
    complete,
    drain,
    insert_executions,
    poller_settings,
    running_poller,
)
from testkit.waiting import wait_until

LOOKBACK_S = 3600.0
MARGIN_S = 600.0


def trim_settings(database_url: str, amqp_url: str, bus: Bus, **overrides: Any) -> PollerSettings:
    return poller_settings(
        database_url,
        amqp_url,
        bus.exchange_name,
        poller_lookback_s=LOOKBACK_S,
        poller_trim_margin_s=MARGIN_S,
        **overrides,
    )


async def test_trim_removes_only_state_older_than_lookback_plus_margin(
    db_pool: asyncpg.Pool,
    bus: Bus,
    database_url: str,
    amqp_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(trim, "TRIM_CHUNK", 3)  # exercise the chunked deletes
    settings = trim_settings(database_url, amqp_url, bus, poller_batch_size=2)
    too_old = LOOKBACK_S + MARGIN_S + 60
    # Broadcast long ago (ids 1-10) and recently (11-12).
    await db_pool.execute(
        """INSERT INTO broadcast_ids (execution_id, broadcast_at)
           SELECT id, now() - make_interval(secs => $1) FROM generate_series(1, 10) id""",
        too_old,
    )
    await db_pool.execute("INSERT INTO broadcast_ids (execution_id) VALUES (11), (12)")
    # Unbroadcast completions: expired (20-26), and inside the look-back (30-34),
    # more of them than a batch, so a count-based trim would have dropped some.
    await insert_executions(db_pool, [*range(20, 27), *range(30, 35)])
    await complete(db_pool, range(20, 27), age_s=too_old)
    await complete(db_pool, range(30, 35), age_s=LOOKBACK_S - 60)

    with caplog.at_level(logging.WARNING, logger="services.poller.trim"):
        result = await trim_poller_state(db_pool, settings)

    assert result.broadcast_ids == 10
    assert sorted(result.expired_backlog) == list(range(20, 27))
    assert await broadcast_set(db_pool) == {11, 12}
    warning = next(r for r in caplog.records if "expired without a broadcast" in r.message)
    assert warning.__dict__["execution_ids"] == list(range(20, 27))

    published = await drain(db_pool, bus, settings)
    assert published == list(range(30, 35))

    again = await trim_poller_state(db_pool, settings)
    assert again.broadcast_ids == 0
    assert again.expired_backlog == []
    assert await broadcast_set(db_pool) == {11, 12, *range(30, 35)}


async def test_the_poll_loop_trims_on_its_own(
    db_pool: asyncpg.Pool, bus: Bus, database_url: str, amqp_url: str
) -> None:
    settings = trim_settings(database_url, amqp_url, bus, poller_trim_interval_s=0.05)
    async with running_poller(db_pool, bus, settings):
        for round_ in range(2):  # at start-up, and again an interval later
            await db_pool.execute(
                """INSERT INTO broadcast_ids (execution_id, broadcast_at)
                   VALUES ($1, now() - make_interval(secs => $2))""",
                round_ + 1,
                LOOKBACK_S + MARGIN_S + 60,
            )

            async def trimmed() -> bool:
                return not await broadcast_set(db_pool)

            await wait_until(trimmed, what="old broadcast ids trimmed")
