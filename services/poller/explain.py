"""EXPLAIN of one poll cycle's claim, for benchmarks and operators.

The claim writes (it deletes from the backlog and inserts broadcast ids), so
it runs inside a transaction that is always rolled back.
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.poller.queries import CLAIM_SQL
from shared.settings import PollerSettings


class _RollBack(Exception):
    pass


async def explain_claim(
    conn: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record],
    settings: PollerSettings,
    *,
    analyze: bool = True,
) -> str:
    """The plan of CLAIM_SQL with the settings' look-back and batch size, as text."""
    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
    lines: list[str] = []
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                f"EXPLAIN ({options}) {CLAIM_SQL}",
                float(settings.poller_lookback_s),
                settings.poller_batch_size,
            )
            lines = [row[0] for row in rows]
            raise _RollBack
    except _RollBack:
        pass
    return "\n".join(lines)
