"""Stage 2 per process on n8n-sourced executions: flatted decode + binary-store read +
image work with the WebP rendition, beside the raw-JSON case in the same run.

`count` executions are recorded as the n8n source records them (the run data
n8n 1.123.81 wrote, `tests/etl/fixtures/n8n/`, each with its own
filesystem-v2 binary id; the frames — ~100 KB JPEGs from the ETL's generator —
are files in a binary-store directory), then 1 worker process drains the queue
with default settings (ETL_WEBP_MAX_PX=640). Same method as the stage2 bench:
completions / (last extracted_at - first), start-up left out; the n8n case
and the raw case alternate `repeats` times, medians reported, every run listed.
"""

from __future__ import annotations

import base64
import copy
import shutil
import statistics
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.cases import stage2_throughput
from services.demo.generator import make_raw_execution
from services.etl import queries
from services.etl.stage2 import flatted

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "tests"
    / "etl"
    / "fixtures"
    / "n8n"
    / "success-fire-and-smoke.flatted"
)
DISTINCT_IMAGES = 12


def n8n_runs(count: int, binary_dir: Path) -> list[str]:
    """Run data texts, each naming its own frame file (written into `binary_dir`)."""
    template = flatted.parse(FIXTURE.read_text())
    frames = [
        base64.b64decode(make_raw_execution(k, image_bytes=100_000)["image"]["data_base64"])
        for k in range(1, 1 + DISTINCT_IMAGES)
    ]
    texts = []
    for i in range(1, count + 1):
        root = copy.deepcopy(template)
        webhook = root["resultData"]["runData"]["Webhook"][0]["data"]["main"][0][0]
        relative = f"workflows/bench/executions/temp/binary_data/{uuid.uuid4()}"
        webhook["binary"]["image"]["id"] = f"filesystem-v2:{relative}"
        path = binary_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(frames[i % DISTINCT_IMAGES])
        texts.append(flatted.stringify(root))
    return texts


async def seed_n8n(pool: asyncpg.Pool, texts: list[str]) -> None:
    for i, text in enumerate(texts, start=1):
        await pool.fetchval(
            queries.INSERT_N8N_EXECUTION,
            i,
            "bench",
            "cam-01-north",
            None,
            None,
            "success",
            datetime.now(UTC),
            None,
            None,
            text,
        )


async def run(count: int = 1000, repeats: int = 3) -> dict[str, Any]:
    binary_dir = Path(tempfile.mkdtemp(prefix="smokesignal-bench-n8n-binary-"))
    try:
        texts = n8n_runs(count, binary_dir)
        raws, jpeg_bytes = stage2_throughput.raw_executions(count)
        n8n_env = {"N8N_BINARY_DATA_DIR": str(binary_dir), "ETL_WEBP_MAX_PX": "640"}
        n8n_rates, raw_rates, n8n_tries = [], [], []
        for _ in range(repeats):  # alternating: both see the same machine load
            n8n = await stage2_throughput.one_run(
                [],
                1,
                profile=False,
                seed=lambda pool: seed_n8n(pool, texts),
                extra_env=n8n_env,
                expected=count,
            )
            raw = await stage2_throughput.one_run(raws, 1, profile=False)
            n8n_tries.append(n8n)
            n8n_rates.append(n8n["per_process_per_s"] or 0.0)
            raw_rates.append(raw["per_process_per_s"] or 0.0)
    finally:
        shutil.rmtree(binary_dir, ignore_errors=True)
    return {
        "executions": count,
        "mean_jpeg_bytes": jpeg_bytes,
        "n8n_per_process_per_s": statistics.median(n8n_rates),
        "n8n_all_runs": n8n_rates,
        "raw_per_process_per_s_same_rounds": statistics.median(raw_rates),
        "raw_all_runs": raw_rates,
        "n8n_failed": [t["failed"] for t in n8n_tries],
        "n8n_cpu_pct": [t["cpu_pct"] for t in n8n_tries],
    }
