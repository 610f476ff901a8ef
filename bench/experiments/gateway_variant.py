"""`python -m bench.experiments.gateway_variant`: the real gateway, with knobs.

BENCH_NO_SEND_TIMEOUT=1  sse-starlette's per-send timeout scope is skipped
                         (each SSE write is a bare `await send(...)`).
BENCH_TRACEMALLOC=FILE   trace Python allocations; on the n-th SIGUSR1 write the
                         top allocation sites (by line) to FILE.n
BENCH_GC_LOG=FILE        append every garbage-collector pause to FILE
                         ("<generation> <ms>" per line).
Everything else is `python -m services.gateway` unchanged.
"""

from __future__ import annotations

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
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    lines = [f"total {total} bytes in {sum(s.count for s in stats)} blocks"]
    lines += [f"{s.size} {s.count} {s.traceback[0]}" for s in stats[:40]]
    # Written whole under a temporary name, so a reader never sees half of it.
    partial = path.with_suffix(".partial")
    partial.write_text("\n".join(lines) + "\n")
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
    main()
