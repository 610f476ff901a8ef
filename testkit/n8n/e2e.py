"""Frames → a real n8n (SAI-shaped workflow, YOLO/Telegram stand-ins) → smokesignal's
processes (ETL reading n8n's database, poller, gateway) → several SSE clients.

Shared by the reduced test in `make test` and the 1,000-frame run of `make test-n8n`.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
from PIL import Image

from services.demo.n8n.camera import Frame, post_frame
from services.demo.n8n.local import running_n8n
from services.demo.n8n.standins import (
    SCENARIOS,
    TELEGRAM_MESSAGE_BASE,
    expected_detections,
    running_standins,
)
from testkit.pipeline import Pipelines
from testkit.sse import SseRecorder
from testkit.waiting import wait_until

SETTLE_WAIT_S = 600.0  # deadlock guard only, never a performance expectation
FINAL_EVENTS = ("etl:stage2:complete", "etl:stage2:failed")


def frame_jpeg(number: int) -> bytes:
    """A distinct 640x480 JPEG per frame, so each stored original can be matched."""
    rng = random.Random(number)
    picture = Image.new("RGB", (640, 480), (rng.randrange(256), rng.randrange(256), 90))
    for _ in range(12):
        x, y = rng.randrange(600), rng.randrange(440)
        picture.paste((rng.randrange(256),) * 3, (x, y, x + 40, y + 40))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)
    return out.getvalue()


def make_frames(count: int, *, fail_share: float, slow_share: float, seed: int = 7) -> list[Frame]:
    rng = random.Random(seed)
    frames = []
    for number in range(1, count + 1):
        frames.append(
            Frame(
                number,
                frame_jpeg(number),
                scenario=rng.choice(SCENARIOS),
                # Slow inferences: their runs finish after runs that started later.
                delay_ms=rng.randint(300, 1500) if rng.random() < slow_share else 0,
                fail=rng.random() < fail_share,
            )
        )
    return frames


async def post_all(webhook_url: str, frames: list[Frame], concurrency: int) -> None:
    queue: asyncio.Queue[Frame] = asyncio.Queue()
    for frame in frames:
        queue.put_nowait(frame)

    async def poster() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            while not queue.empty():
                await post_frame(client, webhook_url, queue.get_nowait())

    await asyncio.gather(*(poster() for _ in range(concurrency)))


async def run_end_to_end(
    *,
    admin_database_url: str,
    pipelines: Pipelines,
    db_pool: asyncpg.Pool,
    tmp_path: Path,
    frames: list[Frame],
    clients: int,
    concurrency: int,
) -> None:
    """Everything the done-criterion asks, asserted; raises with the services' logs if not."""
    async with (
        running_standins() as standins,
        running_n8n(
            admin_database_url,
            yolo_url=standins.yolo_url,
            telegram_url=standins.telegram_url,
            workdir=tmp_path / "n8n",
        ) as n8n,
    ):
        n8n_env = {
            "N8N_DATABASE_URL": n8n.database_url,
            "N8N_WORKFLOW_ID": n8n.workflow_id,
            "N8N_BINARY_DATA_DIR": str(n8n.binary_dir),
            "N8N_CATCHUP_INTERVAL_S": "2",
            "N8N_CATCHUP_SETTLE_S": "5",
        }
        # The trigger goes in first, as an operator would do it (docs/N8N.md).
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.etl", "n8n-trigger", "install"],
            env={**os.environ, **pipelines.service_env, **n8n_env},
            check=True,
            capture_output=True,
            timeout=120,
        )
        pipeline = pipelines.start(pipelines.env(**n8n_env))
        try:
            await pipeline.wait_ready()
            recorders = [SseRecorder(pipeline.base_url) for _ in range(clients)]
            for recorder in recorders:
                await recorder.__aenter__()
            try:
                await post_all(n8n.webhook_url, frames, concurrency)
                n8n_db = await asyncpg.connect(n8n.database_url)
                try:
                    await wait_until(
                        lambda: _all_finished(n8n_db, len(frames)),
                        "n8n to finish every run",
                        guard_s=SETTLE_WAIT_S,
                        poll_s=0.5,
                    )
                    statuses = {
                        r["id"]: r["status"]
                        for r in await n8n_db.fetch("SELECT id, status FROM execution_entity")
                    }
                    out_of_order = await n8n_db.fetchval(
                        """SELECT count(*) FROM execution_entity a JOIN execution_entity b
                           ON b.id = a.id + 1 WHERE b."stoppedAt" < a."stoppedAt" """
                    )
                finally:
                    await n8n_db.close()

                async def everywhere() -> bool:
                    return all(set(statuses) <= _final_ids(r) for r in recorders)

                await wait_until(
                    everywhere, "every execution on every client", guard_s=SETTLE_WAIT_S, poll_s=0.5
                )
            finally:
                for recorder in recorders:
                    await recorder.__aexit__(None, None, None)
            await _check(
                db_pool, pipeline.base_url, frames, statuses, recorders, pipelines.image_dir
            )
            assert out_of_order > 0, "no run finished out of order: the test proves nothing"
        except BaseException as exc:
            raise AssertionError(
                f"{exc}\n{pipeline.outputs()}\n--- n8n ---\n{n8n.log_tail()}"
            ) from exc


async def _all_finished(n8n_db: asyncpg.Connection, count: int) -> bool:
    done = await n8n_db.fetchval(
        "SELECT count(*) FROM execution_entity WHERE status IN ('success', 'error')"
    )
    return bool(done >= count)


def _final_ids(recorder: SseRecorder) -> set[int]:
    return {e.data["execution_id"] for e in recorder.events if e.event in FINAL_EVENTS}


async def _check(
    db_pool: asyncpg.Pool,
    base_url: str,
    frames: list[Frame],
    statuses: dict[int, str],
    recorders: list[SseRecorder],
    image_dir: Path,
) -> None:
    by_request = {
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"smokesignal/frame/{f.number}")): f for f in frames
    }
    failing = {f.number for f in frames if f.fail}
    assert len(statuses) == len(frames)
    assert sum(1 for s in statuses.values() if s == "error") == len(failing)
    rows = await db_pool.fetch("SELECT * FROM executions ORDER BY id")
    assert {r["id"] for r in rows} == set(statuses), "smokesignal recorded exactly n8n's runs"
    seen_frames: set[int] = set()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for row in rows:
            execution_id = row["id"]
            assert row["source_status"] == statuses[execution_id]
            if statuses[execution_id] == "error":
                assert row["processing_stage"] == "failed"
                assert (
                    "n8n execution ended with status 'error' at node 'YOLO Inference'"
                    in (row["stage2_error"])
                )
                continue
            assert row["processing_stage"] == "stage2", row["stage2_error"]
            frame = by_request[row["request_id"]]
            seen_frames.add(frame.number)
            detail = (await http.get(f"/api/executions/{execution_id}")).json()
            expected = expected_detections(frame.number, frame.scenario, 640, 480)
            assert detail["detections"] == expected
            assert (detail["image_width"], detail["image_height"]) == (640, 480)
            assert detail["device_id"] == frame.camera[0]
            assert detail["camera_id"] == frame.camera[1]
            if detail["telegram_sent"]:
                assert detail["telegram_message_id"] == TELEGRAM_MESSAGE_BASE + frame.number
            assert detail["alert_level"] in ("high", "critical") or not detail["telegram_sent"]
            original = await http.get(f"/api/executions/{execution_id}/image")
            assert original.content == frame.jpeg
            assert detail["has_webp"] is True
    assert seen_frames == {f.number for f in frames} - failing
    completed = {r["id"] for r in rows if r["processing_stage"] == "stage2"}
    failed = {r["id"] for r in rows if r["processing_stage"] == "failed"}
    for recorder in recorders:
        complete_events = {
            e.data["execution_id"]: e.data for e in recorder.of("etl:stage2:complete")
        }
        assert set(complete_events) == completed, "0 missing, nothing extra on every client"
        assert {e.data["execution_id"] for e in recorder.of("etl:stage2:failed")} == failed
        batched = {
            item["id"] for e in recorder.of("execution:batch") for item in e.data["executions"]
        }
        assert completed <= batched
        for row in rows:
            if row["id"] in complete_events:
                extracted = complete_events[row["id"]]["extracted_data"]
                assert extracted["detection_count"] == row["detection_count"]
                assert extracted["has_image"] is True
