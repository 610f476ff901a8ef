"""n8n finish → `etl:stage2:complete` on an SSE client, p50/p99, with a real n8n.

A real n8n 1.123.81 runs the SAI-shaped workflow (services/demo/n8n) with the
trigger installed; frames are posted to its webhook at `rate` per second for
`duration_s`; the ETL (n8n source: LISTEN + catch-up; Stage 2 with binary read
and WebP), the poller and the gateway run as their own processes and an SSE
client in another process stamps each arrival. Latency = arrival - n8n's
`stoppedAt` of the run (n8n's clock; same machine). So it covers n8n's commit →
NOTIFY → Stage 1 record → Stage 2 job (decode, frame read, image work) →
outbox relay → RabbitMQ → gateway → SSE.

Where the time goes (`hops`, per execution, each from a timestamp on the path;
all clocks are this machine's):
- `n8n_save`: stoppedAt → the trigger's NOTIFY heard by this process (n8n
  writes the run data and commits after it stamps stoppedAt),
- `stage1_record`: NOTIFY → the `executions` row (`created_at`),
- `stage2_wait`: recorded → the Stage 2 job starts (extracted_at minus its
  processing_time_ms: the wake-up and claim),
- `stage2_work`: the job's work until its commit (the outbox row's created_at),
- `relay`: commit → the outbox row marked published (publisher confirms in),
- `bus_to_sse`: published → the SSE client's receipt (RabbitMQ stream → gateway
  → SSE; the publish happened just before the mark, so this is a lower bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.clients.recorder import Recorder
from bench.harness.infra import ADMIN_DATABASE_URL, bench_database, delete_exchange, exchange_name
from bench.harness.infra import service_env as bench_service_env
from bench.harness.stats import summary_ms
from services.demo.n8n.camera import Frame, post_frame
from services.demo.n8n.local import running_n8n
from services.demo.n8n.standins import SCENARIOS, running_standins
from services.demo.scenes import render_picture
from services.etl.stage1 import n8n_trigger
from testkit.gateway import GatewayProcess as Gateway
from testkit.pipeline import etl_worker, poller
from testkit.processes import ProcessGroup

STAGE2_COMPLETE = ("etl:stage2:complete",)
CHANNEL = "smokesignal_n8n"

# Per execution, the timestamps smokesignal's own rows carry (epoch seconds).
TIMESTAMPS = """
SELECT e.id, extract(epoch FROM e.created_at)::float8 AS recorded,
       extract(epoch FROM e.extracted_at)::float8
           - (o.payload::json->>'processing_time_ms')::float8 / 1000 AS claimed,
       extract(epoch FROM o.created_at)::float8 AS committed,
       extract(epoch FROM o.published_at)::float8 AS published
FROM executions e JOIN outbox o ON o.execution_id = e.id AND o.routing_key = 'stage2.complete'
"""
HOPS = (
    ("n8n_save", "stopped", "notified"),
    ("stage1_record", "notified", "recorded"),
    ("stage2_wait", "recorded", "claimed"),
    ("stage2_work", "claimed", "committed"),
    ("relay", "committed", "published"),
    ("bus_to_sse", "published", "arrived"),
)


def hop_breakdown(stamps: dict[int, dict[str, float]]) -> dict[str, dict[str, float | int]]:
    """p50/p95/p99 of each hop over the executions that have both of its ends."""
    return {
        name: summary_ms([t[end] - t[start] for t in stamps.values() if start in t and end in t])
        for name, start, end in HOPS
    }


async def post_at_rate(webhook_url: str, rate: float, count: int) -> None:
    pictures = [render_picture(k % 3, SCENARIOS[k % 4], f"bench {k}").jpeg for k in range(8)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with httpx.AsyncClient(timeout=60) as client:
        tasks = []
        for number in range(1, count + 1):
            due = start + (number - 1) / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            frame = Frame(number, pictures[number % 8], scenario=SCENARIOS[number % 4])
            tasks.append(asyncio.create_task(post_frame(client, webhook_url, frame)))
        await asyncio.gather(*tasks)


async def run(rate: float = 5.0, duration_s: float = 30.0) -> dict[str, Any]:
    count = max(1, round(rate * duration_s))
    exchange = exchange_name("n8n-latency")
    with tempfile.TemporaryDirectory(prefix="smokesignal-bench-n8n-") as workdir:
        async with (
            bench_database("n8n-latency") as database_url,
            running_standins() as standins,
            running_n8n(
                ADMIN_DATABASE_URL,
                yolo_url=standins.yolo_url,
                telegram_url=standins.telegram_url,
                workdir=Path(workdir),
            ) as n8n,
        ):
            n8n_db = await asyncpg.connect(n8n.database_url)
            notified: dict[int, float] = {}

            def heard(_c: object, _p: int, _ch: str, payload: object) -> None:
                notified.setdefault(int(str(payload)), time.time())

            try:
                await n8n_trigger.install(n8n_db, CHANNEL)
                await n8n_db.add_listener(CHANNEL, heard)
                env = bench_service_env(
                    database_url,
                    exchange,
                    image_dir=Path(workdir) / "images",
                    n8n_database_url=n8n.database_url,
                    n8n_workflow_id=n8n.workflow_id,
                    n8n_binary_data_dir=n8n.binary_dir,
                    n8n_catchup_settle_s=5,
                )
                with ProcessGroup() as group:
                    gateway = Gateway(env, heartbeat_interval_s=300)
                    group.processes.append(gateway.process)
                    await gateway.start()
                    group.start(etl_worker(env))
                    group.start(poller(env))
                    async with Recorder(f"{gateway.base_url}/api/events") as recorder:
                        await post_at_rate(n8n.webhook_url, rate, count)
                        ids: set[int] = set()
                        for _ in range(600):
                            rows = await n8n_db.fetch(
                                "SELECT id FROM execution_entity WHERE status = 'success'"
                            )
                            ids = {r["id"] for r in rows}
                            if len(ids) >= count:
                                break
                            await asyncio.sleep(0.5)
                        await recorder.wait_for_ids(ids, STAGE2_COMPLETE, within_s=120)
                    stopped = {
                        r["id"]: r["stopped"]
                        for r in await n8n_db.fetch(
                            """SELECT id, extract(epoch FROM "stoppedAt")::float8 AS stopped
                               FROM execution_entity WHERE status = 'success'"""
                        )
                    }
                ours = await asyncpg.connect(database_url)
                try:
                    our_rows = await ours.fetch(TIMESTAMPS)
                    # A NOTIFY before the run data (or the frame) was there would show here.
                    retried = await ours.fetchval(
                        "SELECT count(*) FROM stage2_jobs WHERE attempts > 1"
                    )
                finally:
                    await ours.close()
            finally:
                with contextlib.suppress(Exception):
                    await n8n_db.close()
                await delete_exchange(exchange)
    arrived = recorder.first_receipt(STAGE2_COMPLETE)
    values = [arrived[i] - stopped[i] for i in stopped if i in arrived]
    stamps: dict[int, dict[str, float]] = {i: {"stopped": stopped[i]} for i in stopped}
    for row in our_rows:
        if row["id"] in stamps:
            stamps[row["id"]].update({k: v for k, v in dict(row).items() if k != "id" and v})
    for i, stamp in stamps.items():
        if i in notified:
            stamp["notified"] = notified[i]
        if i in arrived:
            stamp["arrived"] = arrived[i]
    return {
        "rate_per_s": rate,
        "frames": count,
        "n8n_runs": len(stopped),
        "received": len(values),
        "missing": len(stopped) - len(values),
        "n8n_finish_to_sse": summary_ms(values),
        "hops": hop_breakdown(stamps),
        "stage2_jobs_retried": retried,
    }
