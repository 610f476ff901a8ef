"""Stage 1 from n8n's database: LISTEN for finished executions, and a catch-up
that finds every finished execution not recorded yet (docs/N8N.md).

Read-only on n8n: SELECTs on execution_entity and execution_data, and LISTEN
(the trigger is installed separately by `n8n-trigger install`). n8n's database
may be down at start or go away mid-run: this loop keeps retrying with
backoff, reports it (`smokesignal_etl_n8n_source_up`, the ingest server's
/health) and runs a catch-up as soon as it is back — the rest of the ETL
carries on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from services.etl import metrics, queries
from services.etl.errors import describe_error
from services.etl.stage1.n8n_catchup import (
    FINISHED_STATUSES,
    SourceRow,
    advance_floor,
    to_record,
)
from services.etl.stage2 import flatted
from services.etl.stage2.n8n_run import NodeNames, first_item, run_data_of
from shared.waits import wait_any

log = logging.getLogger(__name__)

UNKNOWN_CAMERA = "unknown"


@dataclass(frozen=True, slots=True)
class N8nSourceConfig:
    database_url: str
    workflow_id: str | None
    channel: str
    names: NodeNames
    catchup_interval_s: float
    catchup_batch: int
    catchup_settle_s: float
    retry_max_s: float

    @property
    def source_key(self) -> str:
        return f"n8n:{self.workflow_id or '*'}"


def stage1_metadata(data: str | None, names: NodeNames) -> dict[str, Any]:
    """Camera fields for the Stage 1 row, best effort: Stage 2 reads the run data
    strictly (and fails naming the problem); here a problem only leaves them unset."""
    if not data:
        return {}
    try:
        item = first_item(run_data_of(flatted.parse(data)), names.metadata)
    except (ValueError, AttributeError):
        return {}
    metadata = (item or {}).get("json", {}).get("metadata") if item else None
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if isinstance(v, str) and v}


async def record_executions(
    n8n: asyncpg.Connection, pool: asyncpg.Pool, ids: list[int], config: N8nSourceConfig
) -> list[int]:
    """Stage 1 for these n8n executions (finished ones of the workflow); returns the
    ids newly recorded. Idempotent: a recorded id is left as it is."""
    if not ids:
        return []
    rows = await n8n.fetch(
        queries.N8N_FETCH_EXECUTIONS, ids, config.workflow_id, list(FINISHED_STATUSES)
    )
    stored = []
    for row in rows:
        meta = stage1_metadata(row["data"], config.names)
        started: datetime = row["started_at"] or row["created_at"]
        stopped: datetime | None = row["stopped_at"]
        if stopped is not None and stopped < started:
            stopped = started
        execution_id = await pool.fetchval(
            queries.INSERT_N8N_EXECUTION,
            row["id"],
            row["workflow_id"],
            meta.get("camera_id") or meta.get("device_id") or UNKNOWN_CAMERA,
            meta.get("location"),
            meta.get("camera_type"),
            row["status"],
            started,
            stopped,
            meta.get("device_id"),
            row["data"] or "",  # none stored: Stage 2 fails saying so
        )
        if execution_id is not None:
            stored.append(execution_id)
            metrics.INGESTED.labels("stored").inc()
            log.info(
                "recorded n8n execution",
                extra={"execution_id": execution_id, "source_status": row["status"]},
            )
        elif await pool.fetchval(queries.TAKEN_BY, row["id"]) != "n8n":
            await refuse_collision(pool, row["id"], config)
    return stored


async def refuse_collision(pool: asyncpg.Pool, execution_id: int, config: N8nSourceConfig) -> None:
    """An n8n execution whose id raw ingest (CLI, HTTP, generator) already took: it
    cannot be recorded (one `executions.id` space). Said once, loudly, in
    rejected_inputs; the id counts as handled, so the catch-up's floor moves on."""
    error = (
        f"n8n execution {execution_id} not recorded: execution id {execution_id} is already "
        "taken by a raw execution (CLI, HTTP ingest or generator) in this database; "
        "n8n and raw ingest share one id space (docs/N8N.md)"
    )
    if await pool.fetchval(queries.INSERT_ID_COLLISION, config.source_key, error, execution_id):
        metrics.INGESTED.labels("rejected").inc()
        log.error("n8n execution id taken", extra={"execution_id": execution_id, "error": error})


async def catch_up(n8n: asyncpg.Connection, pool: asyncpg.Pool, config: N8nSourceConfig) -> int:
    """One round: record every finished execution above the floor; move the floor."""
    floor = await pool.fetchval(queries.N8N_FLOOR, config.source_key) or 0
    after, new_floor, blocked, recorded_now = floor, floor, False, 0
    while True:
        page = await n8n.fetch(
            queries.N8N_CATCHUP_PAGE,
            after,
            config.workflow_id,
            config.catchup_batch,
            config.catchup_settle_s,
        )
        if not page:
            break
        rows = [SourceRow(r["id"], r["status"], r["deleted"], r["settled"]) for r in page]
        finished = [row.id for row in rows if row.finished]
        taken = await pool.fetch(queries.RECORDED_IDS, finished)
        recorded = {r["id"] for r in taken}
        for r in taken:
            if r["source_format"] != "n8n":
                await refuse_collision(pool, r["id"], config)
        missing = to_record(rows, recorded)
        if missing:
            stored = await record_executions(n8n, pool, missing, config)
            recorded_now += len(stored)
            recorded |= {r["id"] for r in await pool.fetch(queries.RECORDED_IDS, missing)}
        if not blocked:
            moved = advance_floor(new_floor, rows, recorded)
            blocked = moved != rows[-1].id
            new_floor = moved
        after = rows[-1].id
        if len(rows) < config.catchup_batch:
            break
    if new_floor > floor:
        await pool.execute(queries.SET_N8N_FLOOR, config.source_key, new_floor)
    if recorded_now:
        log.info("n8n catch-up recorded executions", extra={"count": recorded_now})
    return recorded_now


@dataclass
class N8nSource:
    """LISTEN + catch-up against one n8n database, reconnecting forever."""

    pool: asyncpg.Pool
    config: N8nSourceConfig
    up: bool = False
    last_error: str | None = None
    notified: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    catchup_rounds: int = 0

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError, TypeError):
            self.notified.put_nowait(int(str(payload)))

    def _set_up(self, up: bool, error: str | None = None) -> None:
        self.up, self.last_error = up, error
        metrics.N8N_SOURCE_UP.set(1 if up else 0)

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.2
        self._set_up(False, "not connected yet")
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self.config.database_url, timeout=10)
            except Exception as exc:
                self._set_up(False, describe_error(exc))
                log.warning(
                    "n8n database unreachable, retrying",
                    extra={"error": self.last_error, "retry_in_s": delay},
                )
                await wait_any(stop, max_wait_s=delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            try:
                await self._connected(conn, stop)
                delay = 0.2
            except Exception as exc:
                self._set_up(False, describe_error(exc))
                log.warning("n8n source failed, reconnecting", extra={"error": self.last_error})
                await wait_any(stop, max_wait_s=delay)
                delay = min(delay * 2, self.config.retry_max_s)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=5)
        self._set_up(False, "stopped")

    async def _connected(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(self.config.channel, self._on_notify)
        # The catch-up gets a connection of its own: a round (a page of ids above the
        # floor, more while a run stays unfinished) never holds up a NOTIFYed run.
        catchup_conn = await asyncpg.connect(self.config.database_url, timeout=10)
        catchup_conn.add_termination_listener(lambda _conn: lost.set())
        failure: list[BaseException] = []
        catchup = asyncio.create_task(self._catch_up_rounds(catchup_conn, stop, lost, failure))
        try:
            self._set_up(True)
            log.info("n8n source connected", extra={"channel": self.config.channel})
            while not stop.is_set():
                if lost.is_set() or conn.is_closed():
                    if failure:
                        raise failure[0]
                    raise ConnectionError("connection to n8n's database lost")
                ids = await self._next_notified(stop, lost, self.config.catchup_interval_s)
                if ids:
                    await record_executions(conn, self.pool, ids, self.config)
        finally:
            catchup.cancel()
            await asyncio.gather(catchup, return_exceptions=True)
            with contextlib.suppress(Exception):
                await catchup_conn.close(timeout=5)

    async def _catch_up_rounds(
        self,
        conn: asyncpg.Connection,
        stop: asyncio.Event,
        lost: asyncio.Event,
        failure: list[BaseException],
    ) -> None:
        """A round at once (anything may have finished while we were away), then one
        every N8N_CATCHUP_INTERVAL_S; a failure is handed to the LISTEN loop via `lost`."""
        try:
            while not stop.is_set() and not lost.is_set():
                await catch_up(conn, self.pool, self.config)
                self.catchup_rounds += 1
                await wait_any(stop, lost, max_wait_s=self.config.catchup_interval_s)
        except Exception as exc:
            failure.append(exc)
            lost.set()

    async def _next_notified(
        self, stop: asyncio.Event, lost: asyncio.Event, max_wait_s: float
    ) -> list[int]:
        """Ids notified so far (waits for the first, up to max_wait_s)."""
        if self.notified.empty():
            getter = asyncio.ensure_future(self.notified.get())
            waiters = [
                getter,
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(lost.wait()),
            ]
            try:
                await asyncio.wait(
                    waiters, timeout=max(0.0, max_wait_s), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters[1:]:
                    waiter.cancel()
                if not getter.done():
                    getter.cancel()
            if not getter.done() or getter.cancelled():
                return []
            ids = [getter.result()]
        else:
            ids = []
        while not self.notified.empty() and len(ids) < self.config.catchup_batch:
            ids.append(self.notified.get_nowait())
        return sorted(set(ids))
