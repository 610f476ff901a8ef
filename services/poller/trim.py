"""Trimming the poller's state by age, never by count.

Both deletions only touch rows older than the look-back plus a margin, which
no cycle can select any more, so trimming can never make an execution that is
still inside the look-back be published twice or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from services.poller.metrics import TRIMMED
from services.poller.queries import EXPIRE_BACKLOG_SQL, TRIM_BROADCAST_IDS_SQL
from shared.settings import PollerSettings

log = logging.getLogger(__name__)

TRIM_CHUNK = 5000
# Ids named in one "expired unbroadcast" log line (the count is always complete).
_LOGGED_IDS = 100


@dataclass(frozen=True, slots=True)
class TrimResult:
    broadcast_ids: int
    expired_backlog: list[int]


async def trim_poller_state(pool: asyncpg.Pool, settings: PollerSettings) -> TrimResult:
    """Delete broadcast ids and never-claimed completions older than look-back + margin."""
    max_age_s = float(settings.poller_lookback_s + settings.poller_trim_margin_s)
    trimmed = 0
    while True:
        status = await pool.execute(TRIM_BROADCAST_IDS_SQL, max_age_s, TRIM_CHUNK)
        deleted = int(status.split()[-1])  # "DELETE n"
        trimmed += deleted
        if deleted < TRIM_CHUNK:
            break
    expired: list[int] = []
    while True:
        rows = await pool.fetch(EXPIRE_BACKLOG_SQL, max_age_s, TRIM_CHUNK)
        expired.extend(row["execution_id"] for row in rows)
        if len(rows) < TRIM_CHUNK:
            break
    TRIMMED.labels("broadcast_ids").inc(trimmed)
    TRIMMED.labels("broadcast_backlog").inc(len(expired))
    if expired:
        # The look-back limitation made visible: these were never sent as executions.new.
        log.warning(
            "completions older than the look-back expired without a broadcast",
            extra={"count": len(expired), "execution_ids": sorted(expired)[:_LOGGED_IDS]},
        )
    if trimmed:
        log.info("trimmed broadcast ids", extra={"count": trimmed})
    return TrimResult(trimmed, expired)
