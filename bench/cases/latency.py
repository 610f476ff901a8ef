"""End-to-end latency: Stage 2 commit → SSE receipt, at fixed completion rates.

What is measured, exactly: the bench seeds executions (Stage 1 rows; the
trigger queues their Stage 2 jobs) and claims those jobs itself as a worker
named `bench-driver`. It then completes them at an exact rate by calling the
ETL's own `services.etl.stage2.jobs.complete_job` — the very transaction a Stage 2
worker commits (execution row + job row + outbox row + NOTIFY). From there
everything is the real system, each service its own process: the ETL
process's outbox relay (woken by the NOTIFY) publishes `stage2.complete` with
publisher confirms to RabbitMQ, the gateway consumes and fans out over SSE,
and an SSE client in a separate process (bench/sse_recorder.py) stamps the
arrival. Latency = arrival - Stage2Complete.timestamp (the completing worker's
clock, taken just before it sends the completing statement). The poller runs
too, publishing `executions.new` batches for the same completions, as in
production. Only Stage 2's image work is skipped — its cost is measured by
the stage2 benchmark; here it would only cap the rate we can drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import asyncpg

from bench.clients.recorder import Recorder
from bench.harness.hops import hop_split, stream_tap
from bench.harness.infra import (
    AMQP_URL,
    CpuMeter,
    bench_database,
    delete_exchange,
    exchange_name,
    service_env,
)
from bench.harness.profiling import Profile
from bench.harness.stats import summary_ms
from services.etl.stage2 import jobs
from services.etl.stage2.jobs import ClaimedJob, Stage2Result
from shared.db import create_pool
from testkit.gateway import GatewayProcess as Gateway
from testkit.pipeline import etl_worker, poller
from testkit.processes import ProcessGroup

DRIVER = "bench-driver"
STAGE2_COMPLETE = ("etl:stage2:complete",)

RESULT = Stage2Result(
    has_smoke=True,
    has_fire=False,
    alert_level="medium",
    detection_count=2,
    confidence=0.81,
    telegram_sent=False,
    image=None,
)

SEED_SQL = """
    INSERT INTO executions (id, workflow_id, camera_id, location, camera_type, status,
                            started_at, stopped_at)
    SELECT i, 'sai-smoke-detection', 'sai-cam-node-0' || (i % 6 + 1), 'Cerro Catedral',
           'rtsp', 'success', now(), now()
    FROM generate_series($1::bigint, $2::bigint) AS i
"""


async def seed_claimed(pool: asyncpg.Pool, first: int, last: int) -> None:
    """Stage 1 rows for ids first..last, their Stage 2 jobs claimed by the driver."""
    await pool.execute(SEED_SQL, first, last)
    claimed = await jobs.claim_jobs(pool, DRIVER, last - first + 1, lease_s=3600)
    assert len(claimed) == last - first + 1, "another worker claimed seeded jobs"


async def drive(pool: asyncpg.Pool, ids: list[int], rate: float) -> dict[str, Any]:
    """Complete `ids` at `rate`/s, each on schedule in its own task; report what was achieved."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    late: list[float] = []

    async def complete(execution_id: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - loop.time()))
        late.append(loop.time() - due)
        async with pool.acquire() as conn:
            event = await jobs.complete_job(conn, ClaimedJob(execution_id, 1), DRIVER, RESULT, 5.0)
        assert event is not None

    began = time.monotonic()
    await asyncio.gather(*(complete(eid, start + i / rate) for i, eid in enumerate(ids)))
    elapsed = time.monotonic() - began
    return {
        "completions": len(ids),
        "achieved_per_s": round(len(ids) / elapsed, 1),
        "driver_start_lag": summary_ms(late),
    }


async def relay_lag(pool: asyncpg.Pool, ids: list[int]) -> dict[str, float | int]:
    rows = await pool.fetch(
        """SELECT extract(epoch FROM published_at - created_at)::float8 AS lag FROM outbox
           WHERE execution_id = ANY($1::bigint[]) AND published_at IS NOT NULL""",
        ids,
    )
    return summary_ms([r["lag"] for r in rows])


def latencies(recorder: Recorder, ids: set[int]) -> tuple[list[float], int]:
    seen: dict[int, float] = {}
    for receipt in recorder.receipts:
        if receipt.event in STAGE2_COMPLETE and receipt.ids[0] in ids and receipt.timestamp:
            committed = datetime.fromisoformat(receipt.timestamp).timestamp()
            seen.setdefault(receipt.ids[0], receipt.received_at - committed)
    return list(seen.values()), len(ids) - len(seen)


def batch_latencies(recorder: Recorder, ids: set[int]) -> tuple[list[float], int]:
    """Stage 2 commit → the `execution:batch` carrying the execution (the poller's path)."""
    committed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    for receipt in recorder.receipts:
        if receipt.event in STAGE2_COMPLETE and receipt.timestamp:
            committed.setdefault(
                receipt.ids[0], datetime.fromisoformat(receipt.timestamp).timestamp()
            )
        elif receipt.event == "execution:batch":
            for execution_id in receipt.ids:
                arrived.setdefault(execution_id, receipt.received_at)
    values = [arrived[i] - committed[i] for i in ids if i in arrived and i in committed]
    return values, len(ids) - len(values)


async def run(
    rates: tuple[int, ...] = (50, 200, 500),
    duration_s: float = 6.0,
    profile: bool = True,
    name: str = "latency",
) -> dict[str, Any]:
    exchange = exchange_name(name)
    results: list[dict[str, Any]] = []
    counts = [round(rate * duration_s) for rate in rates]
    async with bench_database("latency") as database_url:
        pool = await create_pool(database_url, min_size=4, max_size=16)
        try:
            warm_up_id = sum(counts) + 1
            await seed_claimed(pool, 1, warm_up_id)
            env = service_env(database_url, exchange)
            with ProcessGroup() as group:
                gateway = Gateway(env, heartbeat_interval_s=300)
                group.processes.append(gateway.process)
                await gateway.start()
                etl = group.start(etl_worker(env))
                # INFO: its batch lines carry the poller's hops (bench/harness/hops.py).
                poll = group.start(poller(env, log_level="INFO"))
                async with (
                    Recorder(f"{gateway.base_url}/api/events") as recorder,
                    stream_tap(AMQP_URL, exchange) as tap,
                ):
                    # One completion end to end first: relay, poller and gateway are live.
                    await drive(pool, [warm_up_id], 1)
                    for event in (*STAGE2_COMPLETE, "execution:batch"):
                        if not await recorder.wait_for_ids({warm_up_id}, (event,), within_s=60):
                            raise TimeoutError(f"warm-up completion never arrived as {event}")
                    first = 1
                    pids = {"gateway": gateway.pid, "etl": etl.pid, "poller": poll.pid}
                    for index, (rate, count) in enumerate(zip(rates, counts, strict=True)):
                        ids = list(range(first, first + count))
                        first += count
                        profiled = rate == max(rates) and profile
                        async with contextlib.AsyncExitStack() as stack:
                            samplers = {
                                name: await stack.enter_async_context(
                                    Profile(pid, f"latency-{name}-{rate}")
                                )
                                for name, pid in pids.items()
                                if profiled and name != "poller"
                            }
                            with CpuMeter(pids) as cpu:
                                driven = await drive(pool, ids, rate)
                                await recorder.wait_for_ids(set(ids), STAGE2_COMPLETE, within_s=30)
                                await recorder.wait_for_ids(
                                    set(ids), ("execution:batch",), within_s=30
                                )
                        values, missing = latencies(recorder, set(ids))
                        batch_values, batch_missing = batch_latencies(recorder, set(ids))
                        results.append(
                            {
                                "rate_per_s": rate,
                                **driven,
                                "received": len(values),
                                "missing": missing,
                                "commit_to_sse": summary_ms(values),
                                # The poller's path: woken by the commit's NOTIFY.
                                "commit_to_batch": summary_ms(batch_values),
                                "batch_missing": batch_missing,
                                "batch_hops": hop_split(recorder, tap, poll.output(), ids),
                                "outbox_relay_lag": await relay_lag(pool, ids),
                                "cpu_pct": cpu.percent,
                                "profiles": {k: v.summary for k, v in samplers.items()} or None,
                            }
                        )
                        if index < len(rates) - 1:
                            await asyncio.sleep(1)  # a quiet gap between two rates
        finally:
            await pool.close()
            await delete_exchange(exchange)
    return {"duration_s": duration_s, "rates": results}
