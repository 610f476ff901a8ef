"""Property: whatever order n8n's executions finish in, with every NOTIFY lost, the
catch-up records each finished one (once) and its floor never passes an unfinished one.

Real PostgreSQL on both sides: an n8n-shaped database and smokesignal's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.etl.stage1.n8n_catchup import SourceRow, advance_floor
from services.etl.stage1.n8n_source import N8nSourceConfig, catch_up
from services.etl.stage2.n8n_run import NodeNames
from testkit.n8n import runs, tables

RUN_DATA = runs.text_of(runs.inline_frame(runs.fixture_root(), runs.jpeg(64, 48)))
MAX_RUNNING = 12

operations = st.lists(
    st.one_of(
        st.just(("start",)),
        st.tuples(
            st.just("finish"), st.integers(0, 100), st.sampled_from(["success", "error", "crashed"])
        ),
        st.tuples(st.just("delete"), st.integers(0, 100)),
        st.tuples(
            st.just("other_workflow"),
        ),
        st.tuples(st.just("round"), st.integers(1, 4)),
    ),
    min_size=5,
    max_size=50,
)


def config(n8n_url: str, batch: int) -> N8nSourceConfig:
    return N8nSourceConfig(
        database_url=n8n_url,
        workflow_id=tables.WORKFLOW_ID,
        channel="smokesignal_n8n",
        names=NodeNames(),
        catchup_interval_s=1.0,
        catchup_batch=batch,
        catchup_settle_s=0.0,
        retry_max_s=1.0,
    )


@pytest.fixture
async def n8n_conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(empty_database_url)
    await tables.create_tables(conn)
    try:
        yield conn
    finally:
        await conn.close()


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_catch_up_records_every_finished_execution_in_any_finish_order(
    n8n_conn: asyncpg.Connection,
    db_pool: asyncpg.Pool,
    empty_database_url: str,
    ops: list[tuple[object, ...]],
) -> None:
    await n8n_conn.execute("TRUNCATE execution_entity RESTART IDENTITY CASCADE")
    await db_pool.execute("DELETE FROM executions; DELETE FROM n8n_catchup")
    running: list[int] = []
    finished: set[int] = set()
    deleted: set[int] = set()
    for op in ops:
        kind = op[0]
        if kind == "start" and len(running) < MAX_RUNNING:
            running.append(await tables.start_execution(n8n_conn))
        elif kind == "other_workflow":
            other = await tables.start_execution(n8n_conn, workflow_id="someOtherWorkflow")
            await tables.finish_execution(n8n_conn, other, RUN_DATA)
        elif kind == "finish" and running:
            execution_id = running.pop(int(op[1]) % len(running))  # type: ignore[call-overload]
            await tables.finish_execution(n8n_conn, execution_id, RUN_DATA, str(op[2]))
            finished.add(execution_id)
        elif kind == "delete" and running:
            execution_id = running.pop(int(op[1]) % len(running))  # type: ignore[call-overload]
            await n8n_conn.execute(
                'UPDATE execution_entity SET "deletedAt" = now() WHERE id = $1', execution_id
            )
            deleted.add(execution_id)
        elif kind == "round":
            await catch_up(n8n_conn, db_pool, config(empty_database_url, int(op[1])))  # type: ignore[call-overload]
            recorded = {r["id"] for r in await db_pool.fetch("SELECT id FROM executions")}
            assert recorded == finished, "a round must record every finished execution it can see"
            floor = await db_pool.fetchval("SELECT floor_id FROM n8n_catchup") or 0
            assert all(r > floor for r in running), f"floor {floor} passed running {running}"
    # Everything still running finishes, in reverse order; one round finds all of it.
    for execution_id in reversed(running):
        await tables.finish_execution(n8n_conn, execution_id, RUN_DATA)
        finished.add(execution_id)
    await catch_up(n8n_conn, db_pool, config(empty_database_url, 3))
    rows = await db_pool.fetch("SELECT id, workflow_id, status FROM executions ORDER BY id")
    assert {r["id"] for r in rows} == finished
    assert {r["workflow_id"] for r in rows} <= {tables.WORKFLOW_ID}
    assert not finished & deleted


@given(
    statuses=st.lists(
        st.sampled_from(["running", "success", "error", "waiting", "new"]), max_size=20
    ),
    recorded_share=st.integers(0, 100),
)
def test_floor_stops_at_the_first_unfinished_or_unrecorded_id(
    statuses: list[str], recorded_share: int
) -> None:
    rows = [SourceRow(i + 1, status) for i, status in enumerate(statuses)]
    recorded = {r.id for r in rows if r.finished and (r.id * 37) % 100 < recorded_share}
    floor = advance_floor(0, rows, recorded)
    assert all(r.finished and r.id in recorded for r in rows if r.id <= floor)
    if floor < len(rows):
        blocker = rows[floor]
        assert not (blocker.finished and blocker.id in recorded)


def test_an_unsettled_execution_stops_the_floor() -> None:
    rows = [
        SourceRow(1, "success"),
        SourceRow(2, "success", settled=False),
        SourceRow(3, "success"),
    ]
    assert advance_floor(0, rows, {1, 2, 3}) == 1
