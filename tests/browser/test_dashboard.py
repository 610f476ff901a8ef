"""The dashboard in headless Chromium against the real gateway, RabbitMQ and PostgreSQL.

Each test writes executions rows and publishes the contract messages the ETL and
the poller would; the gateway forwards them to the page over SSE.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Locator, Page, expect

from shared.bus import Bus
from shared.contracts import ALERT_LEVELS
from testkit.browser import TOKEN, open_dashboard
from testkit.dashboard_data import Executions, Outcome, completion_event, failure_event
from testkit.gateway import GatewayProcess as Gateway
from testkit.gateway import GatewayStarter
from testkit.sse import SseRecorder
from testkit.tcp_proxy import ProxyFactory, TcpProxy
from testkit.waiting import WAIT_S

pytestmark = pytest.mark.browser
BEARER = {"Authorization": f"Bearer {TOKEN}"}

# The README's screenshot is written only by `make screenshots` (it sets this
# variable); a plain test run saves it under the test's tmp_path, never in the repo.
SCREENSHOT_ENV = "SMOKESIGNAL_SCREENSHOT"


def card(page: Page, execution_id: int) -> Locator:
    return page.locator(f'#gallery [data-execution-id="{execution_id}"]')


async def tag_element(locator: Locator, tag: str) -> None:
    """Mark a DOM element so a test can tell whether it is still the same element later."""
    await locator.evaluate("(element, tag) => { element.testTag = tag; }", tag)


async def expect_same_element(locator: Locator, tag: str) -> None:
    assert await locator.evaluate("element => element.testTag") == tag


async def open_on_one_pending(
    page: Page, gateway: Gateway, executions: Executions, execution_id: int
) -> Locator:
    """The dashboard on one pending execution; returns its card, tagged
    `pending-<id>` so that the test can tell an update in place from a new element."""
    await executions.add_pending(execution_id)
    await open_dashboard(page, gateway.base_url)
    pending = card(page, execution_id)
    await expect(pending).to_have_attribute("data-stage", "stage1")
    await tag_element(pending, f"pending-{execution_id}")
    return pending


async def open_through_a_proxy(page: Page, gateway: Gateway, tcp_proxy: ProxyFactory) -> TcpProxy:
    """The dashboard, signed in and live, reaching the gateway through a proxy to cut."""
    proxy, proxied_url = tcp_proxy(gateway.base_url)
    await open_dashboard(page, proxied_url)
    return proxy


@contextlib.asynccontextmanager
async def cut_off(page: Page, proxy: TcpProxy, gateway: Gateway) -> AsyncIterator[SseRecorder]:
    """The browser cut off (its status says `reconnecting`) while a recorder of the test's
    own watches the gateway directly; on leaving, the way back and the page live again."""
    status = page.locator("#connection-status")
    async with SseRecorder(
        gateway.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as watcher:
        proxy.cut()
        await expect(status).to_have_attribute("data-state", "reconnecting")
        yield watcher
    proxy.restore()
    await expect(status).to_have_attribute("data-state", "live")


async def test_pending_card_is_updated_in_place(
    page: Page, gateway: Gateway, executions: Executions, bus: Bus
) -> None:
    pending = await open_on_one_pending(page, gateway, executions, 101)
    await expect(pending.locator('[data-field="alert"]')).to_have_text("Processing…")
    await expect(pending.locator('[data-field="smoke"]')).to_be_hidden()

    outcome = Outcome(alert_level="high", has_smoke=True, detection_count=3, telegram_sent=True)
    await executions.store_completion(101, outcome)
    await bus.publish(completion_event(101, outcome))

    await expect(pending).to_have_attribute("data-stage", "stage2")
    await expect(pending).to_have_attribute("data-alert", "high")
    await expect(pending.locator('[data-field="alert"]')).to_have_text("High")
    await expect(pending.locator('[data-field="smoke"]')).to_have_text("Smoke")
    await expect(pending.locator('[data-field="detections"]')).to_have_text("3 detections")
    await expect(pending.locator('[data-field="telegram"]')).to_have_text("Telegram sent")
    await expect(pending.locator("img.card-img")).to_be_visible()
    await expect(page.locator("#gallery > li")).to_have_count(1)
    await expect_same_element(pending, "pending-101")
    await expect(pending.locator("img.card-img")).to_have_js_property("naturalWidth", 320)

    # The detail view shows the full image and the results.
    await pending.locator("button").click()
    detail = page.locator("#detail")
    await expect(detail).to_be_visible()
    await expect(detail.locator("#detail-title")).to_contain_text("#101")
    await expect(detail.locator(".detail-fields")).to_contain_text("High")
    image = detail.locator("img.detail-image")
    await expect(image).to_be_visible()
    await expect(image).to_have_js_property("naturalWidth", 640)
    await page.keyboard.press("Escape")
    await expect(detail).to_be_hidden()


async def gallery_ids(page: Page) -> list[int]:
    ids: list[str] = await page.locator("#gallery > li").evaluate_all(
        "cards => cards.map(card => card.dataset.executionId)"
    )
    return [int(i) for i in ids]


async def test_out_of_order_completion_appears_fully_rendered(
    page: Page, gateway: Gateway, executions: Executions, bus: Bus
) -> None:
    await open_dashboard(page, gateway.base_url)
    await executions.add_pending(200)
    await executions.add_pending(201)

    # The newer execution finishes Stage 2 first; ETL and poller both announce it.
    newer = Outcome(alert_level="low", has_smoke=True, detection_count=1)
    await executions.store_completion(201, newer)
    await bus.publish(completion_event(201, newer))
    await bus.publish(await executions.batch(201))
    await expect(card(page, 201)).to_have_attribute("data-alert", "low")

    # Then the older one, which the gallery has never seen.
    older = Outcome(
        alert_level="critical", has_smoke=True, has_fire=True, detection_count=5, telegram_sent=True
    )
    await executions.store_completion(200, older)
    await bus.publish(completion_event(200, older))
    await bus.publish(await executions.batch(200))

    late = card(page, 200)
    await expect(late).to_have_attribute("data-stage", "stage2")
    await expect(late.locator('[data-field="alert"]')).to_have_text("Critical")
    await expect(late.locator('[data-field="smoke"]')).to_have_text("Smoke")
    await expect(late.locator('[data-field="detections"]')).to_have_text("5 detections")
    await expect(late.locator('[data-field="telegram"]')).to_have_text("Telegram sent")
    await expect(late.locator("img.card-img")).to_have_js_property("naturalWidth", 320)
    # Each execution exactly once (event and batch deduplicated), newest first.
    await expect(page.locator("#gallery > li")).to_have_count(2)
    assert await gallery_ids(page) == [201, 200]


async def test_completion_for_an_unknown_execution_fetches_it(
    page: Page, gateway: Gateway, executions: Executions, bus: Bus
) -> None:
    await executions.add_pending(300)
    await open_dashboard(page, gateway.base_url)
    await expect(card(page, 300)).to_have_attribute("data-stage", "stage1")

    # 301 completes without the gallery ever having seen it, and no batch follows.
    await executions.add_pending(301)
    outcome = Outcome(alert_level="medium", has_smoke=True, detection_count=2)
    await executions.store_completion(301, outcome)
    async with page.expect_request(
        lambda request: request.url.split("?")[0].endswith("/api/executions/301")
    ):
        await bus.publish(completion_event(301, outcome))

    fetched = card(page, 301)
    await expect(fetched).to_have_attribute("data-stage", "stage2")
    await expect(fetched.locator('[data-field="alert"]')).to_have_text("Medium")
    await expect(fetched.locator('[data-field="detections"]')).to_have_text("2 detections")
    await expect(fetched.locator('[data-field="telegram"]')).to_have_text("No Telegram")
    assert await gallery_ids(page) == [301, 300]


async def test_failure_shows_failed_with_its_error(
    page: Page, gateway: Gateway, executions: Executions, bus: Bus
) -> None:
    pending = await open_on_one_pending(page, gateway, executions, 400)

    error = "image is not a JPEG: cannot identify image file"
    await executions.store_failure(400, error, 3)
    await bus.publish(failure_event(400, error, 3))

    await expect(pending).to_have_attribute("data-stage", "failed")
    await expect(pending.locator('[data-field="alert"]')).to_have_text("Failed")
    await expect(pending.locator('[data-field="error"]')).to_have_text(f"{error} (3 attempts)")
    await expect_same_element(pending, "pending-400")

    # A failure for an execution the gallery does not have shows up too (fetched by id).
    await executions.add_pending(401)
    await executions.store_failure(401, "raw execution JSON is malformed", 1)
    await bus.publish(failure_event(401, "raw execution JSON is malformed", 1))
    await expect(card(page, 401).locator('[data-field="error"]')).to_have_text(
        "raw execution JSON is malformed (1 attempt)"
    )

    await pending.locator("button").click()
    await expect(page.locator("#detail .detail-fields")).to_contain_text(error)


async def test_missed_events_are_replayed_after_a_network_drop(
    page: Page,
    gateway: Gateway,
    executions: Executions,
    bus: Bus,
    tcp_proxy: ProxyFactory,
) -> None:
    for execution_id in (501, 502, 503):
        await executions.add_pending(execution_id)
    proxy = await open_through_a_proxy(page, gateway, tcp_proxy)
    status = page.locator("#connection-status")

    # One live event first, so the page holds an event id to resume from.
    first = Outcome(alert_level="none")
    await executions.store_completion(501, first)
    await bus.publish(completion_event(501, first))
    await expect(card(page, 501)).to_have_attribute("data-stage", "stage2")
    last_id = await status.get_attribute("data-last-event-id")
    assert last_id
    await tag_element(card(page, 502), "card-502")
    await tag_element(card(page, 503), "card-503")

    async with cut_off(page, proxy, gateway) as watcher:
        # Published while the browser is cut off. The rows are deliberately left as they
        # are: a reload from the REST API could not show these, only the replay can.
        missed = Outcome(alert_level="medium", has_smoke=True, detection_count=2)
        await bus.publish(completion_event(502, missed))
        await bus.publish(failure_event(503, "inference service timed out", 2))
        await executions.add_pending(504)
        await executions.store_completion(504, Outcome(alert_level="high", has_smoke=True))
        await bus.publish(await executions.batch(504))
        await watcher.wait_for(lambda rec: bool(rec.of("execution:batch")), "the batch")
        await expect(status).to_have_attribute("data-state", "reconnecting")

    # The browser reconnected with Last-Event-ID and the gateway resumed from it.
    await expect(status).to_have_attribute("data-resumed-from", last_id)

    await expect(card(page, 502)).to_have_attribute("data-alert", "medium")
    await expect(card(page, 502).locator('[data-field="smoke"]')).to_have_text("Smoke")
    await expect(card(page, 503)).to_have_attribute("data-stage", "failed")
    await expect(card(page, 503).locator('[data-field="error"]')).to_have_text(
        "inference service timed out (2 attempts)"
    )
    await expect(card(page, 504)).to_have_attribute("data-alert", "high")
    # Applied in place: the same elements, no reload.
    await expect_same_element(card(page, 502), "card-502")
    await expect_same_element(card(page, 503), "card-503")
    assert await gallery_ids(page) == [504, 503, 502, 501]


async def test_reconnect_with_nothing_to_resume_from_reloads_the_first_page(
    page: Page,
    gateway: Gateway,
    executions: Executions,
    bus: Bus,
    tcp_proxy: ProxyFactory,
) -> None:
    await executions.add_pending(551)
    proxy = await open_through_a_proxy(page, gateway, tcp_proxy)
    status = page.locator("#connection-status")
    await expect(card(page, 551)).to_have_attribute("data-stage", "stage1")
    # No data event yet: the browser will have no Last-Event-ID to send.
    assert await status.get_attribute("data-last-event-id") == ""

    async with cut_off(page, proxy, gateway) as watcher:
        done = Outcome(alert_level="medium", has_smoke=True, detection_count=2)
        await executions.store_completion(551, done)
        await bus.publish(completion_event(551, done))
        await watcher.wait_for(lambda rec: bool(rec.of("etl:stage2:complete")), "the result")

    # An unconfirmed reconnect may have missed events: the page reloads its first page.
    await expect(card(page, 551)).to_have_attribute("data-alert", "medium")
    await expect(status).to_have_attribute("data-resumed-from", "")


async def test_gateway_restart_resets_and_reloads_the_first_page(
    page: Page, start_gateway: GatewayStarter, executions: Executions, bus: Bus
) -> None:
    gateway = await start_gateway()
    await executions.add_pending(601)
    await executions.add_pending(602)
    await open_dashboard(page, gateway.base_url)
    status = page.locator("#connection-status")
    done = Outcome(alert_level="low", has_smoke=True, detection_count=1)
    await executions.store_completion(601, done)
    await bus.publish(completion_event(601, done))
    await expect(card(page, 601)).to_have_attribute("data-stage", "stage2")
    assert await status.get_attribute("data-last-event-id")

    # While the gateway is down, 602 completes: its event reaches no gateway at all.
    gateway.process.terminate()
    await expect(status).not_to_have_attribute("data-state", "live")
    late = Outcome(alert_level="high", has_smoke=True, detection_count=4, telegram_sent=True)
    await executions.store_completion(602, late)
    await bus.publish(completion_event(602, late))

    # The new process cannot resume the old one's event ids: it sends `reset`, and the
    # page reloads its first page from the database.
    await start_gateway(port=gateway.port)
    await expect(status).to_have_attribute("data-state", "live")
    await expect(card(page, 602)).to_have_attribute("data-alert", "high")
    await expect(card(page, 602).locator('[data-field="telegram"]')).to_have_text("Telegram sent")
    assert await gallery_ids(page) == [602, 601]


async def test_token_is_asked_for_when_missing_or_wrong(
    page: Page, gateway: Gateway, executions: Executions
) -> None:
    await executions.add_pending(701)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    await page.goto(f"{gateway.base_url}/")
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible()

    await dialog.locator('input[name="token"]').fill("not-the-token")
    await dialog.locator('button[type="submit"]').click()
    await expect(dialog.locator(".token-message")).to_contain_text("refused")
    await expect(dialog).to_be_visible()

    await dialog.locator('input[name="token"]').fill(TOKEN)
    await dialog.locator('button[type="submit"]').click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#connection-status")).to_have_attribute("data-state", "live")
    await expect(card(page, 701)).to_have_attribute("data-stage", "stage1")

    # The token was exchanged once for an HttpOnly cookie: a reload needs no sign-in, and
    # neither the stream nor any image ever carried the token in its URL.
    await page.reload()
    await expect(card(page, 701)).to_be_visible()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#user-box")).to_contain_text("shared-token")
    assert any("/api/events" in url for url in urls), urls
    assert not [url for url in urls if TOKEN in url or "token=" in url], urls
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "smokesignal_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""  # invisible to scripts

    # Sign out: the session ends and the page asks again.
    await page.locator('#user-box [data-action="sign-out"]').click()
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".token-message")).to_contain_text("signed out")


async def test_filters_and_load_more(
    page: Page, gateway: Gateway, executions: Executions, bus: Bus
) -> None:
    cameras = ("sai-cam-node-03", "sai-cam-node-07", "sai-cam-node-12")
    for execution_id in range(1, 56):
        await executions.add_pending(execution_id, cameras[execution_id % 3])
        level = ALERT_LEVELS[execution_id % 5]
        outcome = Outcome(alert_level=level, has_smoke=level != "none", has_image=False)
        await executions.store_completion(execution_id, outcome)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await open_dashboard(page, gateway.base_url)

    cards = page.locator("#gallery > li")
    load_more = page.locator("#load-more")
    await expect(cards).to_have_count(50)
    await expect(load_more).to_be_visible()
    await load_more.click()
    await expect(cards).to_have_count(55)
    await expect(load_more).to_be_hidden()
    assert await gallery_ids(page) == list(range(55, 0, -1))

    filters = page.locator("#filters")
    await filters.get_by_label("Smoke only").check()
    await expect(cards).to_have_count(44)  # every level but "none"
    await filters.get_by_role("checkbox", name="Critical").check()
    await expect(cards).to_have_count(11)
    await expect(page.locator('#gallery > li:not([data-alert="critical"])')).to_have_count(0)
    await filters.locator('select[name="camera"]').select_option("sai-cam-node-07")
    await expect(cards).to_have_count(4)  # ids 4, 19, 34, 49
    assert await gallery_ids(page) == [49, 34, 19, 4]

    # Live events respect the filters: the page's stream is filtered by the gateway
    # (camera and alert levels), so a non-matching completion never reaches it.
    streams = [url for url in requested if "/api/events" in url]
    assert "camera=sai-cam-node-07" in streams[-1] and "alert_level=critical" in streams[-1]
    await executions.add_pending(100, "sai-cam-node-07")
    await executions.add_pending(103, "sai-cam-node-07")
    quiet = Outcome(alert_level="low", has_smoke=True)
    await executions.store_completion(100, quiet)
    await bus.publish(completion_event(100, quiet))
    alarming = Outcome(alert_level="critical", has_smoke=True, detection_count=6)
    await executions.store_completion(103, alarming)
    await bus.publish(completion_event(103, alarming))
    await expect(card(page, 103)).to_have_attribute("data-alert", "critical")
    assert await gallery_ids(page) == [103, 49, 34, 19, 4]
    assert not [url for url in requested if "/api/executions/100" in url]  # not even fetched
    # The live card came through a completion, not a new-execution batch: the total too.
    await expect(page.locator("#match-count")).to_have_text("5 matches")
    await expect(page.locator("#shown-count")).to_have_text("5 shown")

    # Clearing the filters reloads the first page.
    await filters.get_by_label("Smoke only").uncheck()
    await filters.get_by_role("checkbox", name="Critical").uncheck()
    await filters.locator('select[name="camera"]').select_option("")
    await expect(cards).to_have_count(50)
    assert (await gallery_ids(page))[:3] == [103, 100, 55]


async def test_gallery_shows_every_state_and_saves_a_screenshot(
    page: Page, gateway: Gateway, executions: Executions, bus: Bus, tmp_path: Path
) -> None:
    results: dict[int, Outcome] = {
        801: Outcome(alert_level="none"),
        802: Outcome(alert_level="low", has_smoke=True, detection_count=1, confidence=0.41),
        803: Outcome(alert_level="none"),
        804: Outcome(alert_level="medium", has_smoke=True, detection_count=2, confidence=0.63),
        806: Outcome(alert_level="high", has_smoke=True, detection_count=3, telegram_sent=True),
        807: Outcome(alert_level="none"),
        808: Outcome(
            alert_level="critical",
            has_smoke=True,
            has_fire=True,
            detection_count=7,
            confidence=0.97,
            telegram_sent=True,
        ),
        809: Outcome(alert_level="low", has_smoke=True, detection_count=1, confidence=0.38),
    }
    cameras = ("sai-cam-node-03", "sai-cam-node-07", "sai-cam-node-12")
    for execution_id in range(801, 813):
        await executions.add_pending(execution_id, cameras[execution_id % 3])
    for execution_id, outcome in results.items():
        await executions.store_completion(execution_id, outcome)
    await executions.store_failure(805, "image is not a JPEG: cannot identify image file", 3)
    await page.set_viewport_size({"width": 1280, "height": 1000})
    await open_dashboard(page, gateway.base_url)

    # Two more arrive live: one completes, one fails.
    live = Outcome(alert_level="high", has_smoke=True, detection_count=4, telegram_sent=True)
    await executions.store_completion(810, live)
    await bus.publish(completion_event(810, live))
    await executions.store_failure(811, "inference service timed out", 2)
    await bus.publish(failure_event(811, "inference service timed out", 2))

    await expect(card(page, 810)).to_have_attribute("data-alert", "high")
    await expect(card(page, 811)).to_have_attribute("data-stage", "failed")
    await expect(page.locator('#gallery > li[data-stage="stage1"]')).to_have_count(1)
    await expect(page.locator('#gallery > li[data-stage="failed"]')).to_have_count(2)
    # Every alert level has its own colour (and its own label).
    colours = {}
    for level in ("none", "low", "medium", "high", "critical"):
        badge = page.locator(f'#gallery > li[data-alert="{level}"] [data-field="alert"]').first
        colours[level] = await badge.evaluate("badge => getComputedStyle(badge).backgroundColor")
    assert len(set(colours.values())) == 5, colours
    for thumbnail in await page.locator("#gallery img.card-img:not([hidden])").all():
        await thumbnail.scroll_into_view_if_needed()  # they load lazily
        await expect(thumbnail).to_have_js_property("naturalWidth", 320)

    await page.evaluate("window.scrollTo(0, 0)")
    target = os.environ.get(SCREENSHOT_ENV) or tmp_path / "screenshot.png"
    await page.screenshot(path=target, full_page=True, animations="disabled")


async def test_thousands_of_cards_stay_live(
    page: Page, gateway: Gateway, executions: Executions, bus: Bus, db_pool: asyncpg.Pool
) -> None:
    await db_pool.execute(
        """
        INSERT INTO executions (id, workflow_id, camera_id, status, started_at, processing_stage,
                                alert_level, has_smoke, detection_count, telegram_sent,
                                extracted_at)
        SELECT n, 'wf-smoke-detection', 'sai-cam-node-' || (n % 20), 'success', now(), 'stage2',
               (ARRAY['none', 'low', 'medium', 'high', 'critical'])[1 + n % 5], n % 5 > 0,
               n % 5, false, now()
        FROM generate_series(1, 3000) AS n
        """
    )
    await open_dashboard(page, gateway.base_url)
    for first in range(1, 3001, 500):
        await bus.publish(await executions.batch(*range(first, first + 500)))
    # Plain DOM polling: Playwright's own selector engine, polled over thousands of cards,
    # would starve the page it is watching.
    await wait_in_page(page, "document.querySelectorAll('#gallery > li').length === 3000")
    await tag_element(card(page, 1500), "card-1500")

    await executions.add_pending(3001)
    alarming = Outcome(alert_level="critical", has_smoke=True, detection_count=9)
    await executions.store_completion(3001, alarming)
    await bus.publish(completion_event(3001, alarming))
    await bus.publish(completion_event(1500, alarming))
    await wait_in_page(
        page,
        "document.querySelector('#gallery > li').dataset.executionId === '3001'"
        " && document.querySelector('[data-execution-id=\"1500\"]').dataset.alert === 'critical'",
    )
    await expect_same_element(card(page, 1500), "card-1500")
    assert await page.evaluate("document.querySelectorAll('#gallery > li').length") == 3001


async def wait_in_page(page: Page, condition: str) -> None:
    # Polled from here: page.wait_for_function evaluates its string with eval() in the
    # page, which the dashboard's Content-Security-Policy (rightly) forbids.
    async with asyncio.timeout(WAIT_S):
        while True:
            if await page.evaluate(condition):
                return
            await asyncio.sleep(0.25)
