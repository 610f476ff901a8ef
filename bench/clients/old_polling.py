"""The old design, as a baseline: the seed's gateway-side polling loop.

Every `interval_s` (the original dashboard polled every 3 s) it reads the
newest `page` executions (50 in the original) newest-first by id and walks
them until it meets the cursor (`lastKnownExecutionId`) — the break. Executions
without Stage 2 results (`extracted_at` NULL) are skipped; the newest one it
collects becomes the new cursor. There is no Stage 2 push: a completion
reaches dashboards only through this loop. An execution whose Stage 2 finishes
after a newer one's has fallen behind the cursor and is never broadcast.

"Broadcast" here is recorded in-process (execution id → time), which spares
the baseline the SSE hop our figures include: it flatters the baseline by a
millisecond or so, nothing more.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from testkit.poller import old_cursor_select as select_new

# Newest first by id, like getExecutions({limit: 50, page: 0}).
LATEST_SQL = "SELECT id, extracted_at FROM executions ORDER BY id DESC LIMIT $1"


class OldPollingBaseline:
    def __init__(self, pool: asyncpg.Pool, interval_s: float = 3.0, page: int = 50) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.page = page
        self.cursor: int | None = None
        self.broadcast_at: dict[int, float] = {}
        self.polls = 0

    async def poll_once(self) -> list[int]:
        rows = await self.pool.fetch(LATEST_SQL, self.page)
        new = select_new([(r["id"], r["extracted_at"]) for r in rows], self.cursor)
        if new:
            self.cursor = new[0]
            now = time.time()
            for execution_id in new:
                self.broadcast_at.setdefault(execution_id, now)
        self.polls += 1
        return new

    async def run(self, stop: asyncio.Event) -> None:
        """setInterval semantics: ticks on a fixed schedule."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.interval_s
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, next_tick - loop.time()))
                return
            except TimeoutError:
                pass
            next_tick += self.interval_s
            await self.poll_once()
