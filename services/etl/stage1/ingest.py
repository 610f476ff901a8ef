"""Stage 1 ingest: record a raw execution (metadata row + raw JSON); the trigger enqueues Stage 2.

Only the envelope is validated here (fast); Stage 2 validates the rest. Bad
input raises MalformedExecution and is recorded in `rejected_inputs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.etl import metrics, queries
from services.etl.errors import ExecutionIdTaken, MalformedExecution
from services.etl.stage1.raw_format import parse_envelope

log = logging.getLogger(__name__)

EXCERPT_CHARS = 1000

# What PostgreSQL (or asyncpg, encoding a value) raises for a value it cannot store:
# bad text or numbers, out-of-range values, a violated constraint. Not outages.
DATABASE_REFUSALS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


ConnOrPool = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


def _text(raw: str | bytes) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedExecution(f"malformed raw execution: not UTF-8 text ({exc})") from None


def _excerpt(raw: str | bytes) -> str:
    text = raw if isinstance(raw, str) else raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    # PostgreSQL text cannot hold NUL.
    return text[:EXCERPT_CHARS].replace("\x00", "\ufffd")


async def record_rejected(
    conn_or_pool: ConnOrPool, source: str, error: str, raw: str | bytes
) -> None:
    await conn_or_pool.execute(
        queries.INSERT_REJECTED,
        source,
        error,
        _excerpt(raw),
    )


async def ingest_execution(
    conn_or_pool: ConnOrPool, raw: str | bytes, *, source: str = "ingest"
) -> int:
    """Store a raw execution; return its id. A duplicate id is a no-op.

    Raises MalformedExecution (after recording the input in rejected_inputs)
    when the text is not a raw execution with a valid envelope.
    """
    execution_id, _stored = await ingest_execution_outcome(conn_or_pool, raw, source=source)
    return execution_id


async def ingest_execution_outcome(
    conn_or_pool: ConnOrPool, raw: str | bytes, *, source: str = "ingest"
) -> tuple[int, bool]:
    """`ingest_execution`, also saying whether it was stored (False: a duplicate)."""
    try:
        text = _text(raw)
        if "\x00" in text:
            raise MalformedExecution("malformed raw execution: contains a NUL character")
        envelope = parse_envelope(text)
        meta = envelope.metadata
        try:
            stored = await conn_or_pool.fetchval(
                queries.INSERT_EXECUTION,
                envelope.execution_id,
                envelope.workflow_id,
                meta.device_id,
                meta.location,
                meta.camera_type,
                envelope.status,
                envelope.started_at,
                envelope.stopped_at,
                text,
                meta.captured_at,
            )
        except DATABASE_REFUSALS as exc:
            # Validation should leave nothing the database refuses; if something is
            # still refused, it is this input's fault: its rejection, not a crash.
            raise MalformedExecution(
                f"malformed raw execution: the database refused it ({type(exc).__name__}: {exc})"
            ) from None
        if stored is None:
            await _refuse_if_taken_by_n8n(conn_or_pool, envelope.execution_id)
    except MalformedExecution as exc:
        await record_rejected(conn_or_pool, source, str(exc).replace("\x00", "\ufffd"), raw)
        metrics.INGESTED.labels("rejected").inc()
        log.warning("rejected raw execution", extra={"source": source, "error": str(exc)})
        raise
    result = "stored" if stored is not None else "duplicate"
    metrics.INGESTED.labels(result).inc()
    log.info(
        "ingested execution" if stored is not None else "duplicate execution ignored",
        extra={"execution_id": envelope.execution_id, "source": source},
    )
    return envelope.execution_id, stored is not None


async def _refuse_if_taken_by_n8n(conn_or_pool: ConnOrPool, execution_id: int) -> None:
    """A duplicate id is a no-op only if the id is a raw execution: n8n's ids share
    `executions.id`, and a raw input must never pass for (or hide) an n8n run."""
    # A new statement: it sees the row whose insert made ours a no-op (committed by then).
    if await conn_or_pool.fetchval(queries.TAKEN_BY, execution_id) == "n8n":
        raise ExecutionIdTaken(
            f"execution id {execution_id} is already taken by an n8n execution "
            "(n8n and raw ingest share one id space; docs/N8N.md)"
        )


async def next_execution_id(pool: asyncpg.Pool) -> int:
    """One above the largest recorded id (a producer without ids of its own starts here)."""
    value = await pool.fetchval(queries.NEXT_EXECUTION_ID)
    assert isinstance(value, int)
    return value


@dataclass(frozen=True, slots=True)
class FileOutcome:
    path: Path
    execution_id: int | None = None
    error: str | None = None


async def ingest_files(pool: asyncpg.Pool, paths: list[Path]) -> list[FileOutcome]:
    """Ingest each file (one raw execution per file); a bad file never stops the rest."""
    outcomes = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            outcomes.append(FileOutcome(path, error=f"cannot read file: {exc.strerror or exc}"))
            continue
        try:
            execution_id = await ingest_execution(pool, data, source=f"file:{path}")
        except MalformedExecution as exc:
            outcomes.append(FileOutcome(path, error=str(exc)))
        else:
            outcomes.append(FileOutcome(path, execution_id=execution_id))
    return outcomes
