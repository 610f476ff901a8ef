from __future__ import annotations

import asyncio
import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from PIL import Image

from services.demo.generator import (
    CAMERAS,
    DEFECTS,
    GeneratorOptions,
    generated_execution,
    make_raw_execution,
    run_generator,
)
from services.etl.errors import PermanentError
from services.etl.stage1.raw_format import parse_execution
from services.etl.stage2.extraction import Stage2Config, run_stage2
from services.etl.stage2.images import ImageLimits
from testkit.etl import run_etl_cli
from testkit.waiting import wait_until


def jpeg_of(raw: dict[str, Any]) -> bytes:
    return base64.b64decode(raw["image"]["data_base64"])


def test_raw_execution_is_deterministic_per_id() -> None:
    at = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    assert make_raw_execution(3, started_at=at) == make_raw_execution(3, started_at=at)


def test_each_camera_has_its_own_real_jpeg() -> None:
    images = {jpeg_of(make_raw_execution(1, camera=i, scenario="clear")) for i in range(6)}
    assert len(images) == len(CAMERAS)
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
            assert image.size == (640, 480)


def test_smoke_scenario_draws_a_plume_and_detects_it_inside_the_image() -> None:
    clear = make_raw_execution(1, camera=0, scenario="clear")
    smoke = make_raw_execution(1, camera=0, scenario="smoke")
    assert jpeg_of(clear) != jpeg_of(smoke)
    assert clear["inference"]["detections"] == []
    assert clear["inference"]["alert_level"] == "none"
    (detection,) = smoke["inference"]["detections"]
    assert detection["class"] == "smoke"
    assert smoke["inference"]["alert_level"] in ("low", "medium", "high", "critical")
    box = detection["bbox"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= 640
    assert box["y"] >= 0 and box["y"] + box["height"] <= 480


def test_image_bytes_knob_makes_benchmark_sized_jpegs() -> None:
    size = len(jpeg_of(make_raw_execution(1, image_bytes=100_000)))
    assert 85_000 <= size <= 115_000


def test_demo_block_only_when_asked() -> None:
    assert "demo" not in make_raw_execution(1)
    raw = make_raw_execution(1, stage2_delay_ms=250, transient_failures=2)
    assert raw["demo"] == {"stage2_delay_ms": 250, "transient_failures": 2}


@pytest.mark.parametrize("defect", DEFECTS)
async def test_every_defect_passes_stage1_and_fails_stage2_permanently(
    defect: str, tmp_path: Path
) -> None:
    raw = json.dumps(make_raw_execution(2, camera=0, scenario="smoke", defect=defect))  # type: ignore[arg-type]
    config = Stage2Config(tmp_path, ImageLimits(10**7, 10**8, 64))
    with pytest.raises(PermanentError):
        await run_stage2(2, raw, 1, config)


def test_generator_options_mix_delays_failures_and_transients() -> None:
    options = GeneratorOptions(max_delay_ms=500, failure_rate=0.3, transient_rate=0.3, seed=1)
    raws = [generated_execution(i, options) for i in range(1, 101)]
    delays = [r.get("demo", {}).get("stage2_delay_ms", 0) for r in raws]
    assert max(delays) <= 500 and len(set(delays)) > 10
    transients = [r.get("demo", {}).get("transient_failures", 0) for r in raws]
    assert 10 <= sum(1 for t in transients if t) <= 50
    broken = 0
    for raw in raws:
        try:
            execution = parse_execution(json.dumps(raw))
            image = base64.b64decode(execution.image.data_base64, validate=True)  # type: ignore[union-attr]
            Image.open(io.BytesIO(image)).load()
        except Exception:
            broken += 1
    assert 10 <= broken <= 50


async def test_run_generator_continues_after_the_highest_id(db_pool: asyncpg.Pool) -> None:
    await db_pool.execute(
        """INSERT INTO executions (id, workflow_id, camera_id, status, started_at)
           VALUES (40, 'wf', 'cam', 'success', now())"""
    )
    produced = await run_generator(db_pool, GeneratorOptions(rate=1000, count=3), asyncio.Event())
    assert produced == [41, 42, 43]
    rows = await db_pool.fetch("SELECT execution_id FROM execution_raw ORDER BY 1")
    assert [r["execution_id"] for r in rows] == [41, 42, 43]


async def test_generate_cli_ingests_from_a_start_id(
    service_env: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    result = await asyncio.to_thread(
        run_etl_cli, ["generate", "--rate", "100", "--count", "3", "--start-id", "500"], service_env
    )
    assert result.returncode == 0, result.stderr
    assert "generated 3 executions (ids 500..502)" in result.stdout
    ids = [r["id"] for r in await db_pool.fetch("SELECT id FROM executions ORDER BY id")]
    assert ids == [500, 501, 502]


async def test_generate_cli_can_write_files_for_ingest(
    tmp_path: Path, service_env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    result = await asyncio.to_thread(
        run_etl_cli,
        ["generate", "--rate", "100", "--count", "2", "--start-id", "7", "--output-dir", str(out)],
        service_env,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["execution-7.json", "execution-8.json"]
    assert parse_execution((out / files[0]).read_text()).execution_id == 7


def test_generate_cli_rejects_bad_options(service_env: dict[str, str]) -> None:
    result = run_etl_cli(["generate", "--failure-rate", "2"], service_env)
    assert result.returncode == 2
    assert "--failure-rate must be between 0 and 1" in result.stderr


async def test_count_zero_runs_until_stopped(db_pool: asyncpg.Pool) -> None:
    stop = asyncio.Event()

    async def three_stored() -> bool:
        return bool(await db_pool.fetchval("SELECT count(*) >= 3 FROM executions"))

    async def stop_after_three() -> None:
        await wait_until(three_stored, "three executions")
        stop.set()

    stopper = asyncio.create_task(stop_after_three())
    produced = await asyncio.wait_for(
        run_generator(db_pool, GeneratorOptions(rate=50, count=0, start_id=1), stop), 30
    )
    await stopper
    assert len(produced) >= 3
    assert produced == list(range(1, len(produced) + 1))
