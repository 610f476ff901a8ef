"""The vertical slice, every service a real process:

ingest (Stage 1) → ETL worker → outbox → bus → poller → bus → gateway → SSE client.
Executions finish Stage 2 out of order; the client must get every one of them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
from httpx_sse import aconnect_sse

from services.demo.generator import make_raw_execution
from services.etl.stage1.ingest import ingest_execution
from testkit.pipeline import Pipelines

N = 16
FAILING_ID = N + 1  # one execution that Stage 2 must reject
TIMEOUT_S = 120.0  # deadlock guard only


async def test_every_out_of_order_completion_reaches_the_sse_client(
    pipelines: Pipelines, db_pool: asyncpg.Pool
) -> None:
    # In demo mode (pipeline_env): the raw demo block's delays make completions out of order.
    base_url = (await pipelines.ready(ETL_CONCURRENCY="4")).base_url

    batched: list[int] = []
    completed: list[int] = []
    failed: list[dict[str, object]] = []

    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None)) as http,
        aconnect_sse(http, "GET", "/api/events") as source,
    ):
        events = source.aiter_sse()
        assert (await anext(events)).event == "connection"

        # Stage 1: the earliest executions get the longest Stage 2 delay, so
        # later ones overtake them (and a cursor-style poller would skip them).
        for execution_id in range(1, N + 1):
            raw = make_raw_execution(execution_id, stage2_delay_ms=(N - execution_id) * 60)
            await ingest_execution(db_pool, json.dumps(raw))
        await ingest_execution(
            db_pool, json.dumps(make_raw_execution(FAILING_ID, defect="not_an_image"))
        )

        async def collect() -> None:
            while (
                set(batched) < set(range(1, N + 1))
                or set(completed) < set(range(1, N + 1))
                or not failed
            ):
                event = await anext(events)
                data: Any = json.loads(event.data) if event.data else None
                if event.event == "execution:batch":
                    batched.extend(e["id"] for e in data["executions"])
                elif event.event == "etl:stage2:complete":
                    completed.append(data["execution_id"])
                elif event.event == "etl:stage2:failed":
                    failed.append(data)
                else:
                    assert event.event == "heartbeat", (event.event, event.data)

        try:
            await asyncio.wait_for(collect(), TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(
                f"missing: batch {sorted(set(range(1, N + 1)) - set(batched))}, "
                f"complete {sorted(set(range(1, N + 1)) - set(completed))}, failed {failed}"
            ) from None

        # Every execution exactly once, whatever the order Stage 2 finished in.
        assert sorted(batched) == list(range(1, N + 1))
        assert sorted(completed) == list(range(1, N + 1))
        assert completed != sorted(completed), "Stage 2 was expected to finish out of order"
        assert [f["execution_id"] for f in failed] == [FAILING_ID]
        assert isinstance(failed[0]["retry_count"], int) and failed[0]["retry_count"] >= 1
        assert "image" in str(failed[0]["error"]).lower()

        # The REST API agrees with the stream, images included.
        page = (await http.get("/api/executions", params={"limit": 50})).json()
        assert [e["id"] for e in page["items"]] == list(range(FAILING_ID, 0, -1))
        stages = {e["id"]: e["processing_stage"] for e in page["items"]}
        assert stages[FAILING_ID] == "failed"
        assert {stages[i] for i in range(1, N + 1)} == {"stage2"}
        thumbnail = await http.get("/api/executions/1/thumbnail")
        assert thumbnail.status_code == 200
        assert thumbnail.headers["content-type"] == "image/jpeg"
