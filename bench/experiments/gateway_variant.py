"""`python -m bench.experiments.gateway_variant`: the real gateway, with knobs.

BENCH_NO_SEND_TIMEOUT=1  sse-starlette's per-send timeout scope is skipped
                         (each SSE write is a bare `await send(...)`).
BENCH_TRACEMALLOC=FILE   trace Python allocations; on the n-th SIGUSR1 write the
                         top allocation sites (by line) to FILE.n
BENCH_TRACEMALLOC_COLLECT=1  before each dump, note the traced total, run a full
                         garbage collection, then dump (live objects only).
BENCH_MALLOC_TRIM=FILE   on SIGUSR2 write "<RSS KiB before> <RSS KiB after>" of a
                         glibc malloc_trim(0) (free heap handed back to the OS) to FILE
BENCH_GC_LOG=FILE        append every garbage-collector pause to FILE
                         ("<generation> <ms>" per line).
Everything else is `python -m services.gateway` unchanged.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import os
import signal
import time
import tracemalloc
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse

from services.gateway.__main__ import main


async def _bare_send(self: EventSourceResponse, send: Any, message: Any) -> None:
    await send(message)


def _dump_allocations(path: Path) -> None:
    before_collect = tracemalloc.get_traced_memory()[0]
    collected = gc.collect() if os.environ.get("BENCH_TRACEMALLOC_COLLECT") else 0
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    lines = [
        f"total {total} bytes in {sum(s.count for s in stats)} blocks"
        f" (traced {before_collect} before collecting {collected} objects)"
    ]
    lines += [f"{s.size} {s.count} {s.traceback[0]}" for s in stats[:40]]
    # Written whole under a temporary name, so a reader never sees half of it.
    partial = path.with_suffix(".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.rename(path)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _malloc_trim(path: Path) -> None:
    before = _rss_kib()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    partial = path.with_suffix(".partial")
    partial.write_text(f"{before} {_rss_kib()}\n")
    partial.rename(path)


def _log_gc_pauses(path: Path) -> None:
    # One line per pause, flushed as it happens (uvicorn ends the process by
    # re-raising SIGTERM, so nothing may wait for a clean exit).
    log = path.open("a", buffering=1)
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pause_ms = (time.perf_counter() - started[0]) * 1000
            log.write(f"{info['generation']} {pause_ms:.3f}\n")

    gc.callbacks.append(on_gc)


if __name__ == "__main__":
    gc_log = os.environ.get("BENCH_GC_LOG")
    if gc_log:
        _log_gc_pauses(Path(gc_log))
    if os.environ.get("BENCH_NO_SEND_TIMEOUT"):
        EventSourceResponse._send_with_timeout = _bare_send  # type: ignore[method-assign]
    trace_to = os.environ.get("BENCH_TRACEMALLOC")
    if trace_to:
        dumps = itertools.count(1)
        tracemalloc.start()
        signal.signal(
            signal.SIGUSR1, lambda *_: _dump_allocations(Path(f"{trace_to}.{next(dumps)}"))
        )
    trim_to = os.environ.get("BENCH_MALLOC_TRIM")
    if trim_to:
        trim_path = Path(trim_to)
        signal.signal(signal.SIGUSR2, lambda *_: _malloc_trim(trim_path))
    main()
