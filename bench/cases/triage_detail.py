"""Detail view: opening an execution and stepping its camera's frames, per frame.

The table is bulk-filled with `size` completed executions over `cameras` cameras (each
with two detections, image 1280x720 stored as a ~100 KB JPEG; the rows share a few
files, the URLs differ, so nothing is served from the browser cache). Nine rows in ten
carry a capture time, the tenth not (the sequence's key falls back to started_at).

Two measurements through the real gateway process:

- **API**: what the page asks for. *Open* = `GET /api/executions/{id}` (the detail
  with its detections) + `GET …/image`; *step* = one `GET …/image` per frame plus,
  every 20 frames, one `GET /sequence` page (its cost is spread over the 20 frames, as
  the page does). The peer in the same run: the plain `GET /api/executions/{id}`.
- **Browser** (headless Chromium): the page opened with `?execution=ID`, then ↓ pressed
  `steps` times; each step is timed in the page from the key press to the new frame's
  image decoded with its boxes drawn (the prefetch of the next frames is on, as in use).

Not asserted anywhere: `docs/BENCHMARKS.md` records the figures with the machine's load.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from PIL import Image
from playwright.async_api import async_playwright

from bench.harness.infra import bench_database, delete_exchange, exchange_name, service_env
from bench.harness.stats import summary_ms
from services.demo.scenes import render_picture
from testkit.gateway import GatewayProcess as Gateway

CHROMIUM = "/usr/bin/chromium"
IMAGE_SIZE = (1280, 720)
DISTINCT_IMAGES = 8
SEQUENCE_PAGE = 20

FILL_SQL = """
    INSERT INTO executions (id, workflow_id, camera_id, location, camera_type, status,
                            started_at, stopped_at, processing_stage, has_smoke, has_fire,
                            alert_level, detection_count, confidence, image_path,
                            thumbnail_path, telegram_sent, extracted_at, detections,
                            image_width, image_height, captured_at)
    SELECT i, 'sai-smoke-detection', 'sai-cam-node-' || lpad((i % $3)::text, 2, '0'),
           'Lugar', 'rtsp', 'success', t, t + interval '4 seconds', 'stage2', true, false,
           'high', 2, 0.8, 'frame-' || (i % $4) || '.jpg', 'frame-' || (i % $4) || '_t.jpg',
           false, t + interval '9 seconds', $5::jsonb, $6, $7,
           CASE WHEN i % 10 <> 0 THEN t - interval '700 milliseconds' END
    FROM (SELECT i, now() - interval '1 second' * ($2 - i) * 3 AS t
          FROM generate_series($1::bigint, $2::bigint) AS i) AS s
"""
DETECTIONS = [
    {
        "class": "smoke",
        "confidence": 0.81,
        "bbox": {"x": 420, "y": 180, "width": 260, "height": 220},
    },
    {"class": "fire", "confidence": 0.64, "bbox": {"x": 500, "y": 380, "width": 60, "height": 40}},
]


def write_images(directory: Path) -> int:
    """A few ~100 KB camera JPEGs (and thumbnails); returns the size of one."""
    size = 0
    for index in range(DISTINCT_IMAGES):
        picture = render_picture(index, "smoke", f"cam {index}", *IMAGE_SIZE, 100_000)
        (directory / f"frame-{index}.jpg").write_bytes(picture.jpeg)
        with Image.open(io.BytesIO(picture.jpeg)) as image:
            image.resize((320, 180)).save(directory / f"frame-{index}_t.jpg", quality=80)
        size = len(picture.jpeg)
    return size


async def timed(http: httpx.AsyncClient, path: str, **params: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await http.get(path, params=params or None)
    response.raise_for_status()
    body = response.json() if "json" in response.headers.get("content-type", "") else None
    return time.perf_counter() - started, body


async def api_case(http: httpx.AsyncClient, anchors: list[int], steps: int) -> dict[str, Any]:
    opens: list[float] = []
    peer: list[float] = []
    per_frame: list[float] = []
    for anchor in anchors:
        detail_s, _ = await timed(http, f"/api/executions/{anchor}")
        image_s, _ = await timed(http, f"/api/executions/{anchor}/image")
        opens.append(detail_s + image_s)
        peer.append(detail_s)
        current = anchor
        frames: list[float] = []
        while len(frames) < steps:
            page_s, page = await timed(
                http, f"/api/executions/{current}/sequence", direction="next", limit=SEQUENCE_PAGE
            )
            items = page["items"]
            if not items:
                break
            for item in items[: steps - len(frames)]:
                image_s, _ = await timed(http, f"/api/executions/{item['id']}/image")
                frames.append(image_s + page_s / len(items))
            current = items[-1]["id"]
        per_frame += frames
    return {
        "open_detail_plus_image": summary_ms(opens),
        "step_per_frame": summary_ms(per_frame),
        "peer_get_execution": summary_ms(peer),
    }


STEP_SCRIPT = """
async (steps) => {
  const dialog = document.getElementById("detail");
  const img = dialog.querySelector(".viewer-image");
  const times = [];
  for (let i = 0; i < steps; i += 1) {
    const before = dialog.dataset.executionId;
    const started = performance.now();
    dialog.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowDown", bubbles: true}));
    while (dialog.dataset.executionId === before) {
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
    await img.decode().catch(() => {});
    times.push(performance.now() - started);
  }
  return times;
}
"""


async def browser_case(base_url: str, anchors: list[int], steps: int) -> dict[str, Any]:
    opens: list[float] = []
    per_frame: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            for anchor in anchors:
                started = time.perf_counter()
                await page.goto(f"{base_url}/?execution={anchor}")  # a shared link
                await page.wait_for_function(
                    """(id) => { const d = document.getElementById("detail");
                        const img = d.querySelector(".viewer-image");
                        return d.open && d.dataset.executionId === String(id) && img.complete
                          && img.naturalWidth > 0
                          && d.querySelector(".viewer-boxes").dataset.count === "2"; }""",
                    arg=anchor,
                )
                opens.append(time.perf_counter() - started)
                per_frame += [t / 1000 for t in await page.evaluate(STEP_SCRIPT, steps)]
        finally:
            await browser.close()
    return {
        # A link with ?execution=ID opened: page load to image and boxes on screen.
        "page_load_to_detail": summary_ms(opens),
        "step_per_frame": summary_ms(per_frame),
    }


async def run(
    size: int = 200_000, cameras: int = 20, anchors: int = 5, steps: int = 40
) -> dict[str, Any]:
    exchange = exchange_name("triage_detail")
    rng = random.Random(14)
    with tempfile.TemporaryDirectory(prefix="bench-triage-") as tmp:
        image_dir = Path(tmp)
        image_bytes = write_images(image_dir)
        async with bench_database("triage_detail") as url:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
            try:
                async with pool.acquire() as conn:
                    await conn.execute("SET session_replication_role = replica")
                    try:
                        await conn.execute(
                            FILL_SQL,
                            1,
                            size,
                            cameras,
                            DISTINCT_IMAGES,
                            json.dumps(DETECTIONS),
                            *IMAGE_SIZE,
                        )
                    finally:
                        await conn.execute("SET session_replication_role = DEFAULT")
                    await conn.execute("VACUUM ANALYZE executions")
            finally:
                await pool.close()
            # Anchors far enough from the end that `steps` frames follow each.
            chosen = [rng.randrange(1, size - steps * cameras * 2) for _ in range(anchors)]
            gateway = await Gateway(service_env(url, exchange, image_dir=image_dir)).start()
            try:
                async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
                    await api_case(http, chosen[:1], 5)  # warm-up
                    api = await api_case(http, chosen, steps)
                print(f"[bench triage_detail] api: {api}", flush=True)
                browser = await browser_case(gateway.base_url, chosen, steps)
                print(f"[bench triage_detail] browser: {browser}", flush=True)
            finally:
                gateway.stop()
                await delete_exchange(exchange)
    return {
        "executions": size,
        "cameras": cameras,
        "image_bytes": image_bytes,
        "anchors": anchors,
        "steps_per_anchor": steps,
        "api": api,
        "browser": browser,
    }
