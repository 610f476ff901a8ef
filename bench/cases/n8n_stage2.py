"""Stage 2 per process on n8n-sourced executions: flatted decode + binary-store read +
image work with the WebP rendition, beside the raw-JSON case in the same run.

`count` executions are recorded as the n8n source records them (the run data
n8n 1.123.81 wrote, `tests/etl/fixtures/n8n/`, each with its own
filesystem-v2 binary id; the frames — ~100 KB JPEGs from the ETL's generator —
are files in a binary-store directory), then 1 worker process drains the queue
with default settings (ETL_WEBP_MAX_PX=640). Same method as the stage2 bench:
completions / (last extracted_at - first), start-up left out. The n8n case and
the raw-JSON case (the same frames, base64 in the raw format) run `repeats`
rounds, interleaved, the order flipping every round; medians reported, every
run listed. Each run also splits the worker's CPU per execution by step
(bench/harness/cpu_split.py): flatted decode / raw parse, frame read, decode,
WebP, thumbnail, original write, the rest of the process (event loop: claims,
commits, relay), and PostgreSQL's backends. On a shared machine compare the
two sources within one run (ratio, CPU ms), not across runs.
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
WEBP_MAX_PX = 640  # the ETL's default


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


def median_split(splits: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Field by field median of the rounds' CPU splits (ms per execution)."""
    found = [x for x in splits if x is not None]
    if not found:
        return None
    steps = sorted({step for x in found for step in x["steps"]})
    return {
        "worker_total": statistics.median(x["worker_total"] for x in found),
        "steps": {
            step: statistics.median(x["steps"].get(step, 0.0) for x in found) for step in steps
        },
        "worker_rest": statistics.median(x["worker_rest"] for x in found),
        "postgres": statistics.median(x["postgres"] for x in found),
    }


async def rounds(
    raws: list[str], repeats: int, binary_dir: Path, image_root: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`repeats` runs of each source, interleaved; (n8n runs, raw runs)."""
    count = len(raws)
    texts = n8n_runs(count, binary_dir)
    n8n_env = {"N8N_BINARY_DATA_DIR": str(binary_dir), "ETL_WEBP_MAX_PX": str(WEBP_MAX_PX)}

    async def n8n_run() -> dict[str, Any]:
        return await stage2_throughput.one_run(
            [],
            1,
            profile=False,
            seed=lambda pool: seed_n8n(pool, texts),
            extra_env=n8n_env,
            expected=count,
            split_cpu=True,
            image_root=image_root,
        )

    async def raw_run() -> dict[str, Any]:
        return await stage2_throughput.one_run(
            raws, 1, profile=False, split_cpu=True, image_root=image_root
        )

    n8n_tries, raw_tries = [], []
    for round_number in range(repeats):
        # Interleaved, and the order flips every round (n8n, raw, raw, n8n, …),
        # so both sources see the same machine, drift included.
        if round_number % 2 == 0:
            n8n_tries.append(await n8n_run())
            raw_tries.append(await raw_run())
        else:
            raw_tries.append(await raw_run())
            n8n_tries.append(await n8n_run())
    return n8n_tries, raw_tries


async def run(count: int = 1000, repeats: int = 5) -> dict[str, Any]:
    raws, jpeg_bytes = stage2_throughput.raw_executions(count)
    binary_dir = Path(tempfile.mkdtemp(prefix="smokesignal-bench-n8n-binary-"))
    try:
        with stage2_throughput.kept_images() as image_root:
            n8n_tries, raw_tries = await rounds(raws, repeats, binary_dir, image_root)
    finally:
        shutil.rmtree(binary_dir, ignore_errors=True)
    n8n_rates = [t["per_process_per_s"] or 0.0 for t in n8n_tries]
    raw_rates = [t["per_process_per_s"] or 0.0 for t in raw_tries]
    n8n_median, raw_median = statistics.median(n8n_rates), statistics.median(raw_rates)
    return {
        "executions": count,
        "rounds": repeats,
        "mean_jpeg_bytes": jpeg_bytes,
        "webp_max_px": WEBP_MAX_PX,
        "n8n_per_process_per_s": n8n_median,
        "n8n_all_runs": n8n_rates,
        "raw_per_process_per_s_same_rounds": raw_median,
        "raw_all_runs": raw_rates,
        "n8n_over_raw": round(n8n_median / raw_median, 3) if raw_median else None,
        "n8n_failed": [t["failed"] for t in n8n_tries],
        "n8n_cpu_pct": [t["cpu_pct"] for t in n8n_tries],
        "raw_cpu_pct": [t["cpu_pct"] for t in raw_tries],
        "cpu_ms_per_execution": {
            "n8n": median_split([t["cpu_ms_per_execution"] for t in n8n_tries]),
            "raw": median_split([t["cpu_ms_per_execution"] for t in raw_tries]),
        },
        "cpu_ms_per_execution_all_runs": {
            "n8n": [t["cpu_ms_per_execution"] for t in n8n_tries],
            "raw": [t["cpu_ms_per_execution"] for t in raw_tries],
        },
    }
