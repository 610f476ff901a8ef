"""Operator triage in headless Chromium against the real gateway, broker and database:
detection boxes on the image, zoom and the camera sequence, false-positive marks and
alert acknowledgements reaching every open page through the outbox and the bus, and a
browser Notification when the page is hidden.

Nothing here is timed: every "within a second" of the issue is a wait for the state
(bench/ measures the speed).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from services.demo.scenes import Scenario, render_picture
from services.etl.outbox.relay import OutboxRelay, RelayConfig
from shared.bus import Bus
from shared.contracts import ExecutionBatch
from shared.executions import SUMMARY_COLUMNS, summary_from_row
from testkit.browser import open_dashboard, sign_in
from testkit.gateway import GatewayProcess as Gateway

pytestmark = pytest.mark.browser

# Recent: the banner loads the open alerts of the last 24 hours.
SCREENSHOT_DIR_ENV = "SCREENSHOT_DIR"  # set by `make screenshots` only
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
IMAGE_SIZE = (640, 360)
GREY = (90, 90, 90)
SMOKE_RGB = (255, 214, 0)  # --box-smoke in style.css
FIRE_RGB = (255, 45, 85)  # --box-fire


@pytest.fixture
async def relay(db_pool: asyncpg.Pool, bus: Bus) -> AsyncIterator[None]:
    """The ETL's outbox relay (as the worker process runs it): publishes triage events."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        OutboxRelay(db_pool, bus, RelayConfig(poll_interval_s=0.05)).run(stop)
    )
    yield
    stop.set()
    await asyncio.wait_for(task, 10)


async def new_page(browser: Browser, **options: Any) -> AsyncIterator[Page]:
    context: BrowserContext = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="UTC", **options
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert not errors, f"uncaught errors in the dashboard: {errors}"


@pytest.fixture
async def second_page(browser: Browser) -> AsyncIterator[Page]:
    async for page in new_page(browser):
        yield page


def write_flat_image(image_dir: Path, execution_id: int, colour: tuple[int, int, int]) -> None:
    Image.new("RGB", IMAGE_SIZE, colour).save(image_dir / f"{execution_id}.png")
    Image.new("RGB", (320, 180), colour).save(image_dir / f"{execution_id}_thumb.png")


async def add_frame(
    pool: asyncpg.Pool,
    image_dir: Path,
    execution_id: int,
    *,
    camera: str = "sai-cam-node-03",
    minute: float = 0,
    captured: float | None = None,
    alert_level: str = "none",
    detections: list[dict[str, Any]] | None = None,
    colour: tuple[int, int, int] = GREY,
) -> None:
    """A completed execution as Stage 2 stores it: results, detections, a flat image.

    `minute` is when its run started, `captured` when the camera took it (None: unknown).
    """
    write_flat_image(image_dir, execution_id, colour)
    started = T0 + timedelta(minutes=minute)
    await pool.execute(
        """INSERT INTO executions
               (id, workflow_id, camera_id, location, camera_type, status, started_at,
                stopped_at, processing_stage, has_smoke, has_fire, alert_level,
                detection_count, confidence, image_path, thumbnail_path, telegram_sent,
                extracted_at, detections, image_width, image_height, captured_at)
           VALUES ($1, 'wf', $2, 'Cerro Catedral', 'rtsp', 'success', $3, $3, 'stage2',
                   $4, false, $5, $6, $7, $8, $9, false, now(), $10::jsonb, $11, $12, $13)""",
        execution_id,
        camera,
        started,
        alert_level != "none",
        alert_level,
        len(detections or []),
        max((d["confidence"] for d in detections or []), default=None),
        f"{execution_id}.png",
        f"{execution_id}_thumb.png",
        json.dumps(detections or []),
        IMAGE_SIZE[0],
        IMAGE_SIZE[1],
        None if captured is None else T0 + timedelta(minutes=captured),
    )


async def publish_batch(pool: asyncpg.Pool, bus: Bus, *ids: int) -> None:
    """The poller's `executions.new` for these executions."""
    rows = await pool.fetch(
        f"SELECT {SUMMARY_COLUMNS} FROM executions e WHERE e.id = ANY($1) ORDER BY e.id",
        list(ids),
    )
    await bus.publish(
        ExecutionBatch(
            executions=[summary_from_row(dict(r.items())) for r in rows],
            timestamp=datetime.now(UTC),
        )
    )


def card(page: Page, execution_id: int) -> Locator:
    return page.locator(f'#gallery [data-execution-id="{execution_id}"]')


async def open_execution(page: Page, gateway: Gateway, execution_id: int) -> Locator:
    """Open the dashboard with the URL naming an execution: its detail opens by itself."""
    await sign_in(page, gateway.base_url)
    await page.goto(f"{gateway.base_url}/?execution={execution_id}")
    detail = page.locator("#detail")
    await expect(detail).to_have_attribute("data-execution-id", str(execution_id))
    await expect(detail).to_be_visible()
    return detail


async def image_ready(detail: Locator, boxes: int) -> None:
    await expect(detail.locator(".viewer-boxes")).to_have_attribute("data-count", str(boxes))
    await expect(detail.locator(".viewer-image")).to_have_js_property("complete", True)
    await expect(detail.locator(".viewer-image")).to_have_js_property("naturalWidth", 640)


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def any_near(image: Image.Image, x: float, y: float, colour: tuple[int, int, int]) -> bool:
    """Is `colour` within a pixel or two of (x, y) (strokes straddle the box edge)?"""
    rgb = image.convert("RGB")
    return any(
        near(rgb.getpixel((round(x) + dx, round(y) + dy)), colour)  # type: ignore[arg-type]
        for dx in range(-2, 3)
        for dy in range(-2, 3)
        if 0 <= round(x) + dx < rgb.width and 0 <= round(y) + dy < rgb.height
    )


async def test_boxes_are_drawn_where_the_detections_say(
    page: Page, gateway: Gateway, db_pool: asyncpg.Pool, image_dir: Path
) -> None:
    smoke = {"x": 100, "y": 50, "width": 200, "height": 100}
    fire = {"x": 400, "y": 200, "width": 120, "height": 80}
    await add_frame(
        db_pool,
        image_dir,
        7,
        alert_level="high",
        detections=[
            {"class": "smoke", "confidence": 0.91, "bbox": smoke},
            {"class": "fire", "confidence": 0.55, "bbox": fire},
        ],
    )
    detail = await open_execution(page, gateway, 7)
    await image_ready(detail, 2)
    await expect(detail.locator(".viewer-boxes .box-smoke text")).to_have_text("smoke 91%")
    await expect(detail.locator(".viewer-boxes .box-fire text")).to_have_text("fire 55%")

    viewer = detail.locator(".viewer")
    shot = Image.open(io.BytesIO(await viewer.screenshot()))
    scale = shot.width / IMAGE_SIZE[0]
    assert abs(shot.height / IMAGE_SIZE[1] - scale) < 0.02, "the viewer keeps the image's shape"

    def edges(box: dict[str, int]) -> list[tuple[float, float]]:
        x, y, w, h = (box[k] * scale for k in ("x", "y", "width", "height"))
        return [(x, y + h / 2), (x + w, y + h / 2), (x + w / 2, y + h), (x + w * 0.75, y + h)]

    for box, colour in ((smoke, SMOKE_RGB), (fire, FIRE_RGB)):
        for x, y in edges(box):
            assert any_near(shot, x, y, colour), f"no {colour} box edge at ({x:.0f}, {y:.0f})"
        inside = (
            (box["x"] + box["width"] / 2) * scale,
            (box["y"] + box["height"] * 0.75) * scale,
        )
        assert near(shot.convert("RGB").getpixel(inside), GREY), "the box is not filled"  # type: ignore[arg-type]
    # Outside every box: just the image.
    assert near(shot.convert("RGB").getpixel((round(20 * scale), round(300 * scale))), GREY)  # type: ignore[arg-type]

    # B hides the boxes (and shows them again).
    await page.keyboard.press("b")
    await expect(viewer).to_have_attribute("data-boxes", "hidden")
    hidden = Image.open(io.BytesIO(await viewer.screenshot())).convert("RGB")
    x, y = edges(smoke)[0]
    assert near(hidden.getpixel((round(x), round(y))), GREY)  # type: ignore[arg-type]
    await page.keyboard.press("b")
    await expect(viewer).to_have_attribute("data-boxes", "shown")

    # Boxes stay on their pixels when zoomed: the smoke box's right edge moves with the image.
    for _ in range(3):
        await page.keyboard.press("+")
    await expect(viewer).to_have_attribute("data-zoom", "1.95")
    zoomed = Image.open(io.BytesIO(await viewer.screenshot()))
    z = 1.953125
    centre_x, centre_y = shot.width / 2, shot.height / 2  # keyboard zoom keeps the centre
    right = centre_x + ((smoke["x"] + smoke["width"]) * scale - centre_x) * z
    mid_y = centre_y + ((smoke["y"] + smoke["height"] / 2) * scale - centre_y) * z
    assert any_near(zoomed, right, mid_y, SMOKE_RGB)
    assert not any_near(zoomed, (smoke["x"] + smoke["width"]) * scale, mid_y, SMOKE_RGB)


async def test_zoom_pan_and_the_camera_sequence_in_capture_order(
    page: Page, gateway: Gateway, db_pool: asyncpg.Pool, image_dir: Path
) -> None:
    # Camera 03's frames: ids out of capture order, another camera's frames in between.
    # 15, 12 and 19 were taken during an outage and uploaded after it, newest first: their
    # runs started last, in the reverse order. 13 has no capture time: its run start counts.
    captured = {11: 0.0, 15: 1.0, 12: 2.0, 19: 3.0, 13: None, 17: 5.0}
    started = {11: 0.1, 15: 8.0, 12: 7.5, 19: 7.0, 13: 4.0, 17: 5.1}
    for execution_id, minute in started.items():
        await add_frame(
            db_pool, image_dir, execution_id, minute=minute, captured=captured[execution_id]
        )
    for execution_id in (14, 16, 18):
        await add_frame(db_pool, image_dir, execution_id, camera="sai-cam-node-07", minute=2.5)
    in_capture_order = [11, 15, 12, 19, 13, 17]

    detail = await open_execution(page, gateway, 11)
    assert "execution=11" in page.url
    await expect(page.locator("#gallery > li")).to_have_count(9)
    # Record every frame the detail shows, in order.
    await detail.evaluate(
        """dialog => {
            window.shownFrames = [dialog.dataset.executionId];
            new MutationObserver(() => {
                const id = dialog.dataset.executionId;
                if (id && window.shownFrames.at(-1) !== id) window.shownFrames.push(id);
            }).observe(dialog, {attributes: true, attributeFilter: ["data-execution-id"]});
        }"""
    )

    # ↓ steps to the camera's next frame in time; the URL follows.
    for expected in in_capture_order[1:3]:
        await page.keyboard.press("ArrowDown")
        await expect(detail).to_have_attribute("data-execution-id", str(expected))
    assert "execution=12" in page.url
    # The position shown is the capture time (the run started 5.5 minutes later).
    taken = (T0 + timedelta(minutes=2)).strftime("%H:%M:%S")
    await expect(detail.locator(".detail-position")).to_contain_text(taken)
    fields = detail.locator(".detail-fields")
    await expect(fields.locator("dt", has_text="Captured").locator("+ dd")).to_contain_text(taken)
    await page.keyboard.press("ArrowUp")
    await expect(detail).to_have_attribute("data-execution-id", "15")

    # Holding Space plays forward (3 frames/s) to the end of the camera's frames.
    await page.keyboard.down(" ")
    await expect(detail).to_have_attribute("data-playing", "3")
    await expect(detail).to_have_attribute("data-execution-id", "17")
    await expect(detail).to_have_attribute("data-playing", "0")  # stopped at the end
    await page.keyboard.up(" ")
    shown = [int(i) for i in await page.evaluate("window.shownFrames")]
    assert shown == [11, 15, 12, 15, 12, 19, 13, 17]

    # Hold-to-play at 10 frames/s with the button, backwards is ↑ stepping.
    for _ in range(5):
        await page.keyboard.press("ArrowUp")
    await expect(detail).to_have_attribute("data-execution-id", "11")
    button = detail.locator('[data-action="play-10"]')
    box = await button.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await expect(detail).to_have_attribute("data-playing", "10")
    await expect(detail).to_have_attribute("data-execution-id", "17")
    await page.mouse.up()
    shown = [int(i) for i in await page.evaluate("window.shownFrames")]
    assert shown[-6:] == in_capture_order

    # ← → walk the gallery's list (newest id first): 17 → 16 → 15.
    await page.keyboard.press("ArrowRight")
    await expect(detail).to_have_attribute("data-execution-id", "16")
    await page.keyboard.press("ArrowRight")
    await expect(detail).to_have_attribute("data-execution-id", "15")
    await page.keyboard.press("ArrowLeft")
    await expect(detail).to_have_attribute("data-execution-id", "16")

    # Zoom: keys, clamped to 1-10x; the wheel zooms; a drag pans; 0 fits again.
    viewer = detail.locator(".viewer")
    await image_ready(detail, 0)
    await page.keyboard.press("-")
    await expect(viewer).to_have_attribute("data-zoom", "1.00")
    for _ in range(15):
        await page.keyboard.press("+")
    await expect(viewer).to_have_attribute("data-zoom", "10.00")
    await page.keyboard.press("0")
    await expect(viewer).to_have_attribute("data-zoom", "1.00")
    area = await viewer.bounding_box()
    assert area is not None
    await page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
    await page.mouse.wheel(0, -400)
    await expect(viewer).not_to_have_attribute("data-zoom", "1.00")
    stage = detail.locator(".viewer-stage")
    before = await stage.evaluate("element => element.style.transform")
    await page.mouse.down()
    await page.mouse.move(area["x"] + area["width"] / 2 - 80, area["y"] + area["height"] / 2 - 40)
    await page.mouse.up()
    assert await stage.evaluate("element => element.style.transform") != before
    await page.keyboard.press("Shift+ArrowRight")
    await page.keyboard.press("0")
    await expect(viewer).to_have_attribute("data-zoom", "1.00")

    # Esc closes, and the URL no longer names an execution.
    await page.keyboard.press("Escape")
    await expect(detail).to_be_hidden()
    # The URL changes on the dialog's close event, after it is hidden: wait for it.
    await expect(page).not_to_have_url(re.compile(r"[?&]execution="))


async def test_false_positive_marked_on_one_page_shows_on_another(
    page: Page,
    second_page: Page,
    gateway: Gateway,
    db_pool: asyncpg.Pool,
    image_dir: Path,
    relay: None,
) -> None:
    for execution_id in range(21, 25):
        await add_frame(db_pool, image_dir, execution_id, minute=execution_id)
    await open_dashboard(page, gateway.base_url)
    await open_dashboard(second_page, gateway.base_url)
    # Page B hides false positives.
    await second_page.select_option('#filters select[name="false_positive"]', "false")
    await expect(second_page.locator("#gallery > li")).to_have_count(4)

    # Page A: select two cards, give a name and a reason, mark them.
    await page.fill("#operator-name", "ana")
    await card(page, 22).locator(".card-check").check()
    await card(page, 24).locator(".card-check").check()
    bar = page.locator("#bulk-bar")
    await expect(bar.locator(".bulk-count")).to_have_text("2 selected")
    await bar.locator('input[name="reason"]').fill("sun glare")
    await bar.locator('[data-action="bulk-mark"]').click()
    await expect(card(page, 22)).to_have_attribute("data-false-positive", "true")
    await expect(bar).to_be_hidden()

    # Page B: they leave the gallery at once, through the bus.
    await expect(card(second_page, 22)).to_have_count(0)
    await expect(card(second_page, 24)).to_have_count(0)
    await expect(second_page.locator("#gallery > li")).to_have_count(2)
    # Page B switches to "only false positives", opens one and unmarks it.
    await second_page.select_option('#filters select[name="false_positive"]', "true")
    await expect(second_page.locator("#gallery > li")).to_have_count(2)
    await second_page.fill("#operator-name", "bo")
    await card(second_page, 24).locator(".card-open").click()
    detail_b = second_page.locator("#detail")
    await expect(detail_b.locator(".triage-status")).to_contain_text("marked by ana")
    await expect(detail_b.locator(".triage-status")).to_contain_text("sun glare")
    await detail_b.locator('[data-action="toggle-fp"]').click()
    await expect(detail_b).to_have_attribute("data-false-positive", "false")
    await detail_b.locator(".audit summary").click()  # the history, read when opened
    await expect(detail_b.locator(".audit-list li")).to_have_count(2)
    await expect(detail_b.locator(".audit-list li").first).to_contain_text("bo removed")

    # Page A sees the unmark.
    await expect(card(page, 24)).to_have_attribute("data-false-positive", "false")
    await expect(card(page, 24).locator('[data-field="false-positive"]')).to_be_hidden()
    rows = await db_pool.fetch(
        "SELECT execution_id, action, actor, reason FROM execution_audit ORDER BY id"
    )
    assert [tuple(r.values()) for r in rows] == [
        (22, "mark_false_positive", "ana", "sun glare"),
        (24, "mark_false_positive", "ana", "sun glare"),
        (24, "unmark_false_positive", "bo", None),
    ]


async def test_alert_banner_per_camera_and_shared_acknowledgement(
    page: Page,
    second_page: Page,
    gateway: Gateway,
    db_pool: asyncpg.Pool,
    image_dir: Path,
    bus: Bus,
    relay: None,
) -> None:
    await add_frame(db_pool, image_dir, 31, alert_level="critical", camera="sai-cam-node-12")
    await open_dashboard(page, gateway.base_url)
    await open_dashboard(second_page, gateway.base_url)
    banner_a, banner_b = page.locator("#alert-banner"), second_page.locator("#alert-banner")
    # An alert open before the pages loaded is on the banner.
    await expect(banner_a.locator('[data-camera="sai-cam-node-12"]')).to_be_visible()

    # Two new high alerts of one camera: one banner entry (the cooldown), on both pages.
    await add_frame(db_pool, image_dir, 32, alert_level="high", minute=1)
    await publish_batch(db_pool, bus, 32)
    await add_frame(db_pool, image_dir, 33, alert_level="high", minute=2)
    await publish_batch(db_pool, bus, 33)
    for banner in (banner_a, banner_b):
        entry = banner.locator('[data-camera="sai-cam-node-03"]')
        await expect(entry).to_have_attribute("data-ids", "32,33")
        await expect(entry.locator(".alert-title")).to_have_text("High alert — sai-cam-node-03")
        await expect(entry.locator(".alert-thumb")).to_be_visible()
    await expect(banner_a.locator(".alert-entry")).to_have_count(2)

    # "Open" jumps to the detail.
    await banner_a.locator('[data-camera="sai-cam-node-03"] [data-action="alert-open"]').click()
    await expect(page.locator("#detail")).to_have_attribute("data-execution-id", "33")
    await page.keyboard.press("Escape")

    # Acknowledged on page A: gone from both pages.
    await page.fill("#operator-name", "ana")
    await banner_a.locator('[data-camera="sai-cam-node-03"] [data-action="alert-ack"]').click()
    await expect(banner_a.locator('[data-camera="sai-cam-node-03"]')).to_have_count(0)
    await expect(banner_b.locator('[data-camera="sai-cam-node-03"]')).to_have_count(0)
    await expect(banner_b.locator('[data-camera="sai-cam-node-12"]')).to_be_visible()
    # Marking the other one a false positive closes its alert too.
    await second_page.fill("#operator-name", "bo")
    await card(second_page, 31).locator(".card-check").check()
    await second_page.locator('#bulk-bar [data-action="bulk-mark"]').click()
    await expect(banner_a).to_be_hidden()
    await expect(banner_b).to_be_hidden()
    acked = await db_pool.fetch(
        "SELECT id, acknowledged_by FROM executions WHERE acknowledged_at IS NOT NULL ORDER BY id"
    )
    assert [tuple(r.values()) for r in acked] == [(32, "ana"), (33, "ana")]


async def test_a_notification_is_shown_when_the_page_is_hidden(
    browser: Browser,
    gateway: Gateway,
    db_pool: asyncpg.Pool,
    image_dir: Path,
    bus: Bus,
) -> None:
    async for page in new_page(browser, permissions=["notifications"]):
        await open_dashboard(page, gateway.base_url)
        # Granted by the context (a person grants it in the prompt "Notify me" opens).
        notify = page.locator("#alert-notify")
        await expect(notify).to_have_attribute("data-permission", "granted")
        await expect(notify).to_have_text("Notifications on")

        # Headless Chromium keeps every tab visible (bringing another tab to the front or
        # minimising the window does not change document.visibilityState), so the page is
        # told it is hidden the way a background tab would be. The Notification is real.
        await page.evaluate(
            """() => {
                Object.defineProperty(document, "visibilityState", {get: () => "hidden"});
                Object.defineProperty(document, "hidden", {get: () => true});
                document.dispatchEvent(new Event("visibilitychange"));
            }"""
        )

        await add_frame(db_pool, image_dir, 41, alert_level="critical")
        await publish_batch(db_pool, bus, 41)
        html = page.locator("html")
        await expect(html).to_have_attribute("data-notification-shown", "41")


async def add_scene_frame(
    pool: asyncpg.Pool,
    image_dir: Path,
    execution_id: int,
    *,
    camera: str,
    minute: float,
    alert_level: str,
    scenario: Scenario = "fire-and-smoke",
) -> None:
    """A camera-like frame whose detections are the plume and fire it shows."""
    picture = render_picture(execution_id % 3, scenario, camera)
    await add_frame(
        pool,
        image_dir,
        execution_id,
        camera=camera,
        minute=minute,
        alert_level=alert_level,
        detections=[
            {
                "class": box.cls,
                "confidence": 0.62 + 0.07 * index,
                "bbox": {"x": box.x, "y": box.y, "width": box.width, "height": box.height},
            }
            for index, box in enumerate(picture.boxes)
        ],
    )
    (image_dir / f"{execution_id}.jpg").write_bytes(picture.jpeg)
    with Image.open(io.BytesIO(picture.jpeg)) as image:
        image.resize((320, 240)).save(image_dir / f"{execution_id}_thumb.jpg")
    await pool.execute(
        """UPDATE executions SET image_width = $2, image_height = $3,
               image_path = $1 || '.jpg', thumbnail_path = $1 || '_thumb.jpg'
           WHERE id = $1""",
        execution_id,
        picture.width,
        picture.height,
    )


async def test_detail_view_and_alert_banner_screenshots(
    page: Page, gateway: Gateway, db_pool: asyncpg.Pool, image_dir: Path, tmp_path: Path
) -> None:
    """`make screenshots` writes these into docs/ (SCREENSHOT_DIR); tests use tmp_path."""
    out = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    await add_scene_frame(
        db_pool, image_dir, 51, camera="sai-cam-node-03", minute=1, alert_level="high"
    )
    await add_scene_frame(
        db_pool, image_dir, 52, camera="sai-cam-node-07", minute=2, alert_level="critical"
    )
    await add_scene_frame(
        db_pool,
        image_dir,
        53,
        camera="sai-cam-node-03",
        minute=3,
        alert_level="none",
        scenario="clear",
    )
    await open_dashboard(page, gateway.base_url)
    await expect(page.locator("#alert-banner .alert-entry")).to_have_count(2)
    for thumb in await page.locator("#alert-banner .alert-thumb").all():
        await expect(thumb).to_have_js_property("naturalWidth", 320)
    await page.screenshot(
        path=str(out / "triage-banner.png"),
        clip={"x": 0, "y": 0, "width": 1280, "height": 470},
        animations="disabled",
    )
    detail = await open_execution(page, gateway, 52)
    await image_ready(detail, 2)
    await page.screenshot(path=str(out / "triage-detail.png"), animations="disabled")
    assert (out / "triage-detail.png").stat().st_size > 0
