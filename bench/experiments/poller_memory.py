"""`python -m bench.experiments.poller_memory [DURATION_S] [WARMUP_S] [RATE] [--untraced]`:
is the poller's RSS creep in the soak (docs/BENCHMARKS.md) a leak?

Runs the poller's own loop and NOTIFY listener (services/poller/__main__.py's
wiring, in this process, logging JSON at INFO to /dev/null like a service whose
stderr is collected) under tracemalloc, while a driver completes RATE
executions/s (the soak's 30) through the backlog trigger and its NOTIFY. After
the warm-up and every minute it collects garbage and records: the traced
Python heap, the live objects by type, the allocation sites that grew since
the first sample, and VmRSS. Growth that survives a collection at one site,
sample after sample, is a leak; a flat heap under a rising RSS is the
allocator keeping freed memory. `--untraced` runs without tracemalloc (whose
own bookkeeping moves RSS) and ends with glibc's malloc_trim(0): what RSS it
hands back was freed memory the allocator kept, not live data. Prints one JSON
line per sample.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import json
import logging
import os
import sys
import time
import tracemalloc
from typing import Any

import uvloop

from bench.harness.infra import AMQP_URL, bench_database, delete_exchange, exchange_name
from services.poller.loop import BACKLOG_CHANNEL, run_poller
from shared.bus import Bus
from shared.db import create_pool
from shared.logs import configure_logging
from shared.notify import NotifyListener
from shared.waits import StampedEvent
from testkit.poller import complete, insert_executions, poller_settings


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def _sample(first: tracemalloc.Snapshot | None, started: float) -> dict[str, Any]:
    gc.collect()
    if not tracemalloc.is_tracing():
        types = collections.Counter(type(o).__name__ for o in gc.get_objects())
        return {
            "snapshot": None,
            "at_s": round(time.monotonic() - started),
            "rss_kib": _rss_kib(),
            "objects": sum(types.values()),
        }
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    types = collections.Counter(type(o).__name__ for o in gc.get_objects())
    sample: dict[str, Any] = {
        "at_s": round(time.monotonic() - started),
        "traced_kib": round(sum(s.size for s in snapshot.statistics("filename")) / 1024),
        "rss_kib": _rss_kib(),
        "objects": sum(types.values()),
        "top_types": dict(types.most_common(8)),
    }
    if first is not None:
        sample["grew_since_first"] = [
            f"{d.size_diff / 1024:+.1f} KiB {d.count_diff:+d} blocks {d.traceback}"
            for d in snapshot.compare_to(first, "lineno")[:8]
        ]
    return {"snapshot": snapshot, **sample}


async def main(duration_s: float, warmup_s: float, rate: float) -> list[dict[str, Any]]:
    exchange = exchange_name("poller-memory")
    samples: list[dict[str, Any]] = []
    async with bench_database("poller-memory") as database_url:
        settings = poller_settings(
            database_url, AMQP_URL, exchange, poller_interval_s=1.0, poller_batch_size=200
        )
        pool = await create_pool(database_url, 1, 10)
        driver = await create_pool(database_url, 1, 2)
        bus = Bus.for_settings(settings)
        await bus.connect()
        stop, wake = asyncio.Event(), StampedEvent()
        tasks = [
            asyncio.create_task(NotifyListener(database_url, {BACKLOG_CHANNEL: wake}).run(stop)),
            asyncio.create_task(run_poller(pool, bus, settings, stop, wake=wake)),
        ]
        started = time.monotonic()
        next_sample = started + warmup_s
        first: tracemalloc.Snapshot | None = None
        execution_id = 0
        try:
            while time.monotonic() - started < duration_s:
                execution_id += 1
                await insert_executions(driver, [execution_id])
                await complete(driver, [execution_id])
                await asyncio.sleep(1 / rate)
                if time.monotonic() >= next_sample:
                    sample = _sample(first, started)
                    snapshot = sample.pop("snapshot")
                    first = first or snapshot
                    samples.append(sample)
                    print(json.dumps(sample), file=sys.stdout, flush=True)
                    next_sample += 60
            if not tracemalloc.is_tracing():
                before = _rss_kib()
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                print(json.dumps({"malloc_trim_rss_kib": [before, _rss_kib()]}), flush=True)
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await bus.close()
            await pool.close()
            await driver.close()
            await delete_exchange(exchange)
    return samples


if __name__ == "__main__":
    traced = "--untraced" not in sys.argv
    args = [float(a) for a in sys.argv[1:] if a != "--untraced"]
    duration, warmup, rate = (args + [300.0, 60.0, 30.0][len(args) :])[:3]
    configure_logging("INFO", "poller")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    if traced:
        tracemalloc.start(1)
    uvloop.run(main(duration, warmup, rate))
