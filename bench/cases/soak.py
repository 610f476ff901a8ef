"""Soak: the whole pipeline at a steady rate with connected clients; RSS slope per service.

The demo generator ingests `rate` executions/s (real Stage 1 → a real ETL worker
with images → outbox → RabbitMQ → poller → gateway), while `clients` SSE
connections stay open and read everything (idle dashboards). Every
`sample_every_s` the resident set size of each service process is read from
/proc. After `warmup_s` — long enough for the gateway's replay buffer
(REPLAY_BUFFER_SIZE events) to fill and the allocators to reach their working
size — a least-squares line through the samples gives each service's RSS slope
in KiB/min: a leak shows as a slope that stays positive however long the run.

Full form (`python -m bench soak`): an hour, slope over the last 50 min.
Quick form (`--quick`): seconds, a smoke test of the harness, no figure. The
machine is shared: figures are noisy, and a slope from minutes says little
about an hour.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from typing import Any

from bench.clients.sse_load import FanoutClient
from bench.harness.infra import bench_database, delete_exchange, exchange_name, rss_kib, service_env
from testkit.gateway import GatewayProcess as Gateway
from testkit.pipeline import etl_worker, poller
from testkit.processes import ManagedProcess, ProcessGroup


def slope_kib_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) samples, in KiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return cov / var * 60


def summarize(samples: list[tuple[float, int]], warmup_s: float) -> dict[str, Any]:
    steady = [(t, r) for t, r in samples if t >= warmup_s]
    return {
        "rss_start_kib": samples[0][1] if samples else None,
        "rss_after_warmup_kib": steady[0][1] if steady else None,
        "rss_end_kib": samples[-1][1] if samples else None,
        "rss_max_kib": max((r for _, r in samples), default=None),
        "slope_after_warmup_kib_per_min": round(slope_kib_per_min(steady), 1),
        "samples_after_warmup": len(steady),
    }


async def run(
    duration_s: float = 3600.0,
    warmup_s: float = 600.0,
    rate: float = 30.0,
    clients: int = 200,
    sample_every_s: float = 10.0,
) -> dict[str, Any]:
    exchange = exchange_name("soak")
    image_dir = tempfile.mkdtemp(prefix="smokesignal-bench-soak-images-")
    async with bench_database("soak") as database_url:
        env = service_env(database_url, exchange, image_dir=image_dir)
        try:
            with ProcessGroup() as group:
                gateway = Gateway(env, heartbeat_interval_s=15)
                group.processes.append(gateway.process)
                await gateway.start()
                etl = group.start(etl_worker(env))
                poll = group.start(poller(env))
                generator = group.start(
                    ManagedProcess.python_module(
                        ["services.etl", "generate", "--rate", str(rate), "--count", "0"],
                        env,
                        "generator",
                    )
                )
                # Clients that read and discard (the marker never occurs).
                load = FanoutClient(
                    "127.0.0.1", gateway.port, "/api/events", clients, b"\x00never\x00", 1
                )
                await load.connect_all()
                pids = {"gateway": gateway.pid, "etl": etl.pid, "poller": poll.pid}
                samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
                started = time.monotonic()
                while (elapsed := time.monotonic() - started) < duration_s:
                    for name, pid in pids.items():
                        samples[name].append((elapsed, rss_kib(pid)))
                    for process in group.processes:
                        process.check_running()
                    await asyncio.sleep(sample_every_s)
                lost = load.lost
                load.close()
                generator.stop()
        finally:
            await delete_exchange(exchange)
            shutil.rmtree(image_dir, ignore_errors=True)
    return {
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "rate_per_s": rate,
        "clients": clients,
        "clients_lost": lost,
        "sample_every_s": sample_every_s,
        "services": {name: summarize(rows, warmup_s) for name, rows in samples.items()},
        "samples": {name: [(round(t), r) for t, r in rows] for name, rows in samples.items()},
    }
