"""Filters in the URL, the statistics page and its drill-down, and export, in Chromium.

`make screenshots` runs the statistics screenshot test with SCREENSHOT_DIR=docs; in
`make test` the screenshots go to the test's temporary directory (never the repo).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Page, expect

from services.gateway import stats
from shared.contracts import ALERT_LEVELS
from testkit.browser import open_dashboard, sign_in
from testkit.dashboard_data import Executions, Outcome
from testkit.gateway import GatewayProcess as Gateway

pytestmark = pytest.mark.browser

CAMERAS = ("sai-cam-node-03", "sai-cam-node-07", "sai-cam-node-12")


async def seed(executions: Executions, pool: asyncpg.Pool, count: int, *, hours: int) -> None:
    """`count` executions over the last `hours` hours, every alert level, three cameras.

    Execution i started i * hours/count hours ago; level = ALERT_LEVELS[i % 5].
    """
    now = datetime.now(UTC)
    for i in range(1, count + 1):
        await executions.add_pending(i, CAMERAS[i % 3])
        level = ALERT_LEVELS[i % 5]
        outcome = Outcome(
            alert_level=level,
            has_smoke=level != "none",
            detection_count=i % 4,
            confidence=0.5 + (i % 5) / 10,
            has_image=False,
        )
        await executions.store_completion(i, outcome)
        started = now - timedelta(hours=hours * i / count, minutes=1)
        await pool.execute("UPDATE executions SET started_at = $2 WHERE id = $1", i, started)
    await stats.compact(pool)


def gallery_ids_js() -> str:
    return (
        "[...document.querySelectorAll('#gallery > li')].map(li => Number(li.dataset.executionId))"
    )


async def test_filters_live_in_the_url_and_back_forward_restore_them(
    page: Page, gateway: Gateway, executions: Executions, db_pool: asyncpg.Pool
) -> None:
    await seed(executions, db_pool, 40, hours=80)  # one every two hours
    await open_dashboard(page, gateway.base_url)
    cards = page.locator("#gallery > li")
    count = page.locator("#match-count")
    await expect(count).to_have_text("40 matches")

    filters = page.locator("#filters")
    await filters.locator('select[name="range"]').select_option("24h")
    await expect(page).to_have_url(f"{gateway.base_url}/?range=24h")
    await expect(count).to_have_text("11 matches")  # 2, 4, … 22 hours (and a minute) ago
    await filters.get_by_role("checkbox", name="High").check()
    await filters.get_by_role("checkbox", name="Critical").check()
    await expect(page).to_have_url(
        f"{gateway.base_url}/?range=24h&alert_level=high&alert_level=critical"
    )
    await expect(cards).to_have_count(4)  # ids 3, 4, 8, 9
    assert await page.evaluate(gallery_ids_js()) == [9, 8, 4, 3]
    await filters.locator('select[name="camera"]').select_option("sai-cam-node-03")
    await expect(cards).to_have_count(2)  # 9 % 3 == 0 and 3 % 3 == 0
    await expect(count).to_have_text("2 matches")
    filtered_url = page.url

    # Back: the previous filters, in the form and in the gallery; forward: again.
    await page.go_back()
    await expect(page).to_have_url(
        f"{gateway.base_url}/?range=24h&alert_level=high&alert_level=critical"
    )
    await expect(cards).to_have_count(4)
    await expect(filters.locator('select[name="camera"]')).to_have_value("")
    await page.go_back()
    await expect(page).to_have_url(f"{gateway.base_url}/?range=24h&alert_level=high")
    await page.go_back()
    await page.go_back()
    await expect(page).to_have_url(f"{gateway.base_url}/")
    await expect(cards).to_have_count(40)
    await expect(filters.get_by_role("checkbox", name="High")).not_to_be_checked()
    await page.go_forward()
    await expect(count).to_have_text("11 matches")
    await expect(filters.locator('select[name="range"]')).to_have_value("24h")

    # The link alone reproduces the view in a fresh page.
    fresh = await page.context.new_page()
    await fresh.goto(filtered_url)
    await expect(fresh.locator("#gallery > li")).to_have_count(2)
    await expect(fresh.locator("#filters select[name='camera']")).to_have_value("sai-cam-node-03")
    await expect(fresh.locator("#filters").get_by_role("checkbox", name="Critical")).to_be_checked()

    # A custom range: absolute times in the URL.
    since = datetime.now(UTC) - timedelta(hours=9)
    await page.goto(f"{gateway.base_url}/?range=custom&since={since.strftime('%Y-%m-%dT%H:%MZ')}")
    await expect(page.locator("#match-count")).to_have_text("4 matches")  # 2, 4, 6, 8 h ago
    await expect(page.locator("#filters input[name='since']")).to_be_visible()

    # A bad value in a link is refused by the server with a clear, translated message.
    await page.goto(f"{gateway.base_url}/?alert_level=severe")
    await expect(page.locator("#error-banner")).to_contain_text(
        "these values are not valid: alert_level"
    )


async def test_statistics_drill_down_to_the_gallery(
    page: Page, gateway: Gateway, executions: Executions, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed(executions, db_pool, 60, hours=48)
    # Operators marked two false positives (ids 1 and 4: cameras node-07 and node-07).
    await db_pool.execute("UPDATE executions SET false_positive = true WHERE id IN (1, 4)")
    await sign_in(page, gateway.base_url)
    await page.goto(f"{gateway.base_url}/stats?range=7d")
    summary = page.locator(".stats-summary")
    await expect(summary).to_have_attribute("aria-busy", "false")
    await expect(summary.locator('[data-total="executions"]')).to_have_text("60")
    await expect(summary.locator('[data-total="smoke"]')).to_have_text("48")
    await expect(page.locator("#levels-chart")).to_have_attribute("data-interval", "day")

    # Rankings: most smoke detections first; each row links to that camera's smoke.
    ranking = page.locator('table[data-by="camera"][data-order="smoke"] tbody tr')
    await expect(ranking).to_have_count(3)
    await expect(ranking.first.locator("td").first).to_have_text("16")

    # Per hour, then click one bar segment: the gallery shows exactly that slice.
    await page.locator('#filters select[name="interval"]').select_option("hour")
    await expect(page.locator("#levels-chart")).to_have_attribute("data-interval", "hour")
    await expect(page).to_have_url(f"{gateway.base_url}/stats?range=7d&interval=hour")
    segments = page.locator('#levels-chart a[data-series="critical"]')
    await expect(segments).to_have_count(12)  # ids 4, 9, … 59: one per bucket
    await segments.first.click()
    await expect(page.locator("#connection-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#gallery > li")).to_have_count(1)
    card = page.locator("#gallery > li")
    await expect(card).to_have_attribute("data-alert", "critical")
    assert "alert_level=critical" in page.url and "range=custom" in page.url
    await expect(page.locator("#match-count")).to_have_text("1 match")

    # A ranking row → the gallery for that camera's smoke detections.
    await page.go_back()
    await expect(ranking).to_have_count(3)
    camera = await ranking.first.get_attribute("data-key")
    await ranking.first.locator("a").click()
    await expect(page.locator("#match-count")).to_have_text("16 matches")
    await expect(page.locator('#gallery > li:not([data-smoke="true"])')).to_have_count(0)
    await expect(page.locator("#filters select[name='camera']")).to_have_value(camera or "")

    # False positives: the ranking row leads to that camera's marked executions.
    await page.go_back()
    await expect(summary.locator('[data-total="false_positives"]')).to_have_text("2")
    fp_rows = page.locator('table[data-by="camera"][data-order="false_positives"] tbody tr')
    await expect(fp_rows).to_have_count(1)
    await expect(fp_rows.first).to_have_attribute("data-key", "sai-cam-node-07")
    await fp_rows.first.locator("a").click()
    await expect(page.locator("#match-count")).to_have_text("2 matches")
    await expect(page.locator("#filters select[name='false_positive']")).to_have_value("true")
    assert sorted(await page.evaluate(gallery_ids_js())) == [1, 4]

    # Screenshots of the statistics page, in English and Spanish.
    out = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    await page.goto(f"{gateway.base_url}/stats?range=7d&interval=hour")
    await expect(summary).to_have_attribute("aria-busy", "false")
    await expect(page.locator("#levels-chart svg")).to_be_visible()
    await page.screenshot(path=str(out / "statistics.png"), full_page=True)
    await page.locator("#language").select_option("es")
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(summary).to_have_attribute("aria-busy", "false")
    await expect(page.locator("#levels-heading")).to_have_text("Ejecuciones por nivel de alerta")
    await page.screenshot(path=str(out / "statistics-es.png"), full_page=True)


async def test_export_downloads_the_filtered_list(
    page: Page, gateway: Gateway, executions: Executions, db_pool: asyncpg.Pool
) -> None:
    await seed(executions, db_pool, 30, hours=30)
    await sign_in(page, gateway.base_url)
    await page.goto(f"{gateway.base_url}/?alert_level=high&camera=sai-cam-node-03")
    await expect(page.locator("#match-count")).to_have_text("2 matches")  # ids 3 and 18
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Export CSV").click()
    download = await info.value
    name = download.suggested_filename
    assert name.startswith("smokesignal_high_cam-sai-cam-node-03_at-"), name
    assert name.endswith(".csv")
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(row["id"]) for row in rows] == [18, 3]
    assert {row["alert_level"] for row in rows} == {"high"}
    assert {row["camera_id"] for row in rows} == {"sai-cam-node-03"}
    # The progress display showed the total and is gone once done.
    group = page.locator(".export")
    await expect(group).to_have_attribute("data-state", "idle")
    await expect(group).to_have_attribute("data-last-file", name)
    await expect(page.locator("#export-progress")).to_be_hidden()

    async with page.expect_download() as info:
        await page.get_by_role("button", name="Export JSON").click()
    assert (await info.value).suggested_filename.endswith(".json")
