"""Operator triage writes: false-positive marks and alert acknowledgements.

Each action is one transaction: lock the rows (in id order, so concurrent bulk
requests cannot deadlock), change them, append one audit row per execution and
write ONE `execution.updated` event into the outbox. The ETL's outbox relay
publishes it like the Stage 2 events, so it has the same ordering, replay and
resume guarantees, and it exists exactly when the change committed.

Two changes of the same execution serialize on its row lock, so the later one
gets the later outbox id and is published after the earlier one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.gateway.queries import (
    ACKNOWLEDGE_SQL,
    AUDIT_TRAIL_SQL,
    EXISTING_IDS_SQL,
    FALSE_POSITIVE_SQL,
)
from shared.contracts import ExecutionUpdated, TriageAction, TriageState
from shared.outbox import write_event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TriageOutcome:
    changed: list[TriageState]
    # Requested ids with no execution (never an error for the others).
    not_found: list[int]
    # Acknowledge only: ids that were acknowledged already (nothing changed).
    unchanged: list[int]


async def _apply(
    pool: asyncpg.Pool,
    ids: list[int],
    action: TriageAction,
    actor: str,
    reason: str | None,
    sql: str,
    *args: object,
) -> TriageOutcome:
    wanted = sorted(set(ids))
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(sql, wanted, *args)
        changed = [TriageState.model_validate(dict(row.items())) for row in rows]
        done = {state.execution_id for state in changed}
        missing = set(wanted) - done
        existing: set[int] = set()
        if missing:
            found = await conn.fetch(EXISTING_IDS_SQL, sorted(missing))
            existing = {row["id"] for row in found}
        if changed:
            event = ExecutionUpdated(
                action=action,
                actor=actor,
                reason=reason,
                executions=changed,
                timestamp=datetime.now(UTC),
            )
            await write_event(conn, event, changed[0].execution_id if len(changed) == 1 else None)
    log.info(
        "triage action",
        extra={
            "action": action,
            "actor": actor,
            "execution_ids": sorted(done)[:20],
            "count": len(done),
        },
    )
    return TriageOutcome(changed, sorted(missing - existing), sorted(existing))


async def set_false_positive(
    pool: asyncpg.Pool, ids: list[int], *, mark: bool, actor: str, reason: str | None
) -> TriageOutcome:
    """Mark (or unmark) executions as false positives; unmarking clears the reason."""
    action: TriageAction = "mark_false_positive" if mark else "unmark_false_positive"
    reason = reason if mark else None
    return await _apply(
        pool, ids, action, actor, reason, FALSE_POSITIVE_SQL, mark, reason, actor, action
    )


async def acknowledge(pool: asyncpg.Pool, ids: list[int], *, actor: str) -> TriageOutcome:
    """Acknowledge alerts; an execution acknowledged before keeps its first acknowledgement."""
    return await _apply(pool, ids, "acknowledge", actor, None, ACKNOWLEDGE_SQL, actor)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    actor: str
    reason: str | None
    at: datetime


async def audit_trail(pool: asyncpg.Pool, execution_id: int, limit: int) -> list[AuditEntry]:
    rows = await pool.fetch(AUDIT_TRAIL_SQL, execution_id, limit)
    return [AuditEntry(r["action"], r["actor"], r["reason"], r["at"]) for r in rows]
