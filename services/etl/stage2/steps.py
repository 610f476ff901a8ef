"""CPU time per Stage 2 step, measured on the thread that runs it.

Thread CPU time (not wall time) so the split stays meaningful on a loaded
machine: `smokesignal_etl_stage2_step_cpu_seconds_total{step}` divided by the
jobs done is CPU per execution for each step; the process's CPU minus their
sum is the event loop's share (claims, commits, the relay, logs). The
benchmarks read it (bench/cases/n8n_stage2.py).
"""

from __future__ import annotations

import time
from typing import Final

from services.etl.metrics import STAGE2_STEP_CPU_SECONDS

RUN_DATA: Final = "run_data"  # raw JSON parse + validation, or flatted decode + node extraction
FRAME: Final = "frame"  # base64 decode, or the read from n8n's binary store
DECODE: Final = "decode"  # identify + decode (this verifies the image)
WEBP: Final = "webp"  # the WebP rendition: encode + write
THUMBNAIL: Final = "thumbnail"  # resize + JPEG encode + write
ORIGINAL: Final = "original"  # the original's file write
STEPS: Final = (RUN_DATA, FRAME, DECODE, WEBP, THUMBNAIL, ORIGINAL)

_COUNTERS = {step: STAGE2_STEP_CPU_SECONDS.labels(step) for step in STEPS}


class StepClock:
    """Charges the thread's CPU time since the previous lap to a step.

    Use it on one thread only: CPU time is per thread.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = time.thread_time()

    def lap(self, step: str) -> None:
        now = time.thread_time()
        _COUNTERS[step].inc(now - self._last)
        self._last = now
