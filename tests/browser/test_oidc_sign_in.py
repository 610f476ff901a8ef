"""Dashboard sign-in against a real OpenID Connect provider (npm `oidc-provider`).

The provider runs locally (`make oidc-provider-deps` installs it outside the clone) and
signs its own tokens; the gateway does the authorization code flow with PKCE, verifies
the ID token against the provider's JWKS and starts its cookie session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, expect

from shared.bus import Bus
from testkit.dashboard_data import Executions, Outcome, completion_event
from testkit.gateway import GatewayProcess
from testkit.net import free_port
from testkit.processes import REPO_ROOT
from testkit.waiting import WAIT_S

pytestmark = pytest.mark.browser

PROVIDER_SCRIPT = REPO_ROOT / "tests" / "browser" / "oidc" / "provider.mjs"
PROVIDER_MODULES = (
    Path(os.environ.get("OIDC_PROVIDER_DIR", Path.home() / ".cache/smokesignal/oidc-provider"))
    / "node_modules"
)
ROLES_CLAIM = "urn:zitadel:iam:org:project:roles"
CLIENT_ID = "smokesignal"


def card(page: Page, execution_id: int) -> Locator:
    return page.locator(f'#gallery [data-execution-id="{execution_id}"]')


@pytest.fixture
def gateway_port() -> int:
    return free_port()


@pytest.fixture
def provider(gateway_port: int, tmp_path: Path) -> Iterator[str]:
    """The OIDC provider process; yields its issuer URL."""
    if not (PROVIDER_MODULES / "oidc-provider").is_dir():
        pytest.fail(f"{PROVIDER_MODULES} lacks oidc-provider: run `make oidc-provider-deps`")
    port = free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    env = {
        **os.environ,
        "PORT": str(port),
        "MODULES": str(PROVIDER_MODULES),
        "REDIRECT_URI": f"{gateway}/auth/callback",
        "POST_LOGOUT_URI": f"{gateway}/",
        "ROLES_CLAIM": ROLES_CLAIM,
    }
    log = (tmp_path / "oidc-provider.log").open("wb")
    proc = subprocess.Popen(
        ["node", str(PROVIDER_SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client() as http:
            for _ in range(int(WAIT_S / 0.1)):
                try:
                    if http.get(f"{issuer}/.well-known/openid-configuration").is_success:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "oidc-provider.log").read_text())
                time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
async def oidc_gateway(
    service_env: dict[str, str],
    image_dir: Path,
    gateway_port: int,
    provider: str,
    gateway_forks: None,
) -> AsyncIterator[Callable[..., Awaitable[GatewayProcess]]]:
    started: list[GatewayProcess] = []

    async def start(session_ttl_s: float = 3600) -> GatewayProcess:
        env = {k: v for k, v in service_env.items() if k != "GATEWAY_TOKEN"}
        gateway = GatewayProcess(
            env,
            port=gateway_port,
            forked=True,
            image_dir=image_dir,
            oidc_issuer=provider,
            oidc_client_id=CLIENT_ID,
            oidc_scopes="openid profile",
            session_ttl_s=session_ttl_s,
        )
        started.append(gateway)
        return await gateway.start(within_s=WAIT_S)

    yield start
    for gateway in started:
        gateway.stop()


async def sign_in_through_popup(page: Page, login: str) -> None:
    """Click the dialog's sign-in button and log in on the provider's own page."""
    dialog = page.locator("#token-dialog")
    await expect(dialog.locator(".oidc-part")).to_be_visible()
    await expect(dialog.locator(".token-part")).to_be_hidden()
    async with page.expect_popup() as popup_info:
        await dialog.locator('[data-action="oidc-sign-in"]').click()
    popup = await popup_info.value
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_close(_: object) -> None:
        if not closed.done():
            closed.set_result(None)

    popup.on("close", on_close)
    # With a live session at the provider (a second sign-in) the popup passes straight
    # through and closes itself; otherwise the provider's own login form shows.
    login_form = popup.locator('input[name="login"]')
    shown = asyncio.ensure_future(login_form.wait_for(timeout=WAIT_S * 1000))
    await asyncio.wait([shown, closed], return_when=asyncio.FIRST_COMPLETED)
    if not closed.done():
        await shown
        await popup.wait_for_load_state("domcontentloaded")
        await login_form.fill(login)
        await popup.locator('input[name="password"]').fill("any password")
        await popup.locator('button[type="submit"]').click()
    else:
        shown.cancel()
        with contextlib.suppress(asyncio.CancelledError, PlaywrightError):
            await shown
    try:
        await asyncio.wait_for(asyncio.shield(closed), WAIT_S)
    except TimeoutError:
        raise AssertionError(
            f"sign-in popup stuck at {popup.url}: {await popup.inner_text('body')}"
        ) from None
    await expect(dialog).to_be_hidden()


async def test_sign_in_with_oidc_then_an_expired_session_asks_again_and_keeps_the_page(
    page: Page, oidc_gateway, executions: Executions, bus: Bus
) -> None:
    # The session must only outlast the part before the expiry (sign-in to the live
    # event for 902): under 2 s at load 11 on 2 cores, so 10 s leaves a wide margin, and
    # the test waits on the expiry instead of sleeping through a longer one.
    gateway = await oidc_gateway(session_ttl_s=10)
    await executions.add_pending(901)
    await executions.add_pending(902)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))

    await page.goto(f"{gateway.base_url}/")
    await sign_in_through_popup(page, "ana")
    status = page.locator("#connection-status")
    await expect(status).to_have_attribute("data-state", "live")
    await expect(page.locator("#user-box")).to_contain_text("ana")
    await expect(card(page, 901)).to_have_attribute("data-stage", "stage1")
    session = await (await page.context.request.get(f"{gateway.base_url}/auth/session")).json()
    assert session["user"]["roles"] == ["viewer", "operator"]
    assert session["user"]["via"] == "oidc"
    # A live event, so the page has a position in the stream to resume from.
    low = Outcome(alert_level="low", has_smoke=True, detection_count=1)
    await executions.store_completion(902, low)
    await bus.publish(completion_event(902, low))
    await expect(card(page, 902)).to_have_attribute("data-alert", "low")

    # The session runs out: the stream ends with `session:expired`, the page says so
    # and asks to sign in again, keeping the cards it shows.
    await expect(status).to_have_attribute("data-state", "expired", timeout=60_000)
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".token-message")).to_contain_text("session has ended")
    await expect(card(page, 901)).to_be_visible()

    # While signed out, execution 901 completes; after signing in the page resumes from
    # its last event id and gets it (no reload needed).
    outcome = Outcome(alert_level="high", has_smoke=True, detection_count=2)
    await executions.store_completion(901, outcome)
    await bus.publish(completion_event(901, outcome))
    await sign_in_through_popup(page, "ana")
    await expect(status).to_have_attribute("data-state", "live")
    await expect(card(page, 901)).to_have_attribute("data-alert", "high")
    assert await status.get_attribute("data-resumed-from"), "the stream did not resume"

    # No credential ever rode in a URL the page asked for (the code and state do, by
    # the protocol's design, but only on the provider's redirect to /auth/callback).
    page_urls = [url for url in urls if url.startswith(gateway.base_url)]
    assert not [url for url in page_urls if "token=" in url or "code=" in url], page_urls


async def test_a_user_without_a_role_is_refused(page: Page, oidc_gateway) -> None:
    gateway = await oidc_gateway()
    await page.goto(f"{gateway.base_url}/")
    await sign_in_through_popup(page, "nobody")
    session = await (await page.context.request.get(f"{gateway.base_url}/auth/session")).json()
    assert session["signed_in"] and session["user"]["roles"] == []
    answer = await page.context.request.get(f"{gateway.base_url}/api/executions")
    assert answer.status == 403
    assert "viewer role" in (await answer.json())["detail"]


async def test_a_forged_callback_is_refused(page: Page, oidc_gateway) -> None:
    gateway = await oidc_gateway()
    # A callback with a state the gateway never issued (login CSRF / replay).
    await page.goto(f"{gateway.base_url}/auth/callback?code=stolen&state=made-up")
    await expect(page.locator("body")).to_contain_text("Sign-in failed")
    session = await (await page.context.request.get(f"{gateway.base_url}/auth/session")).json()
    assert session["signed_in"] is False


OPERATOR_CONTROLS = (
    "#operator-name",
    '#detail [data-action="toggle-fp"]',
    '#detail [data-action="acknowledge"]',
    '#detail .triage-reason input[name="reason"]',
)


async def signed_in_beside_a_high_alert(
    page: Page, base_url: str, user: str, executions: Executions, db_pool: asyncpg.Pool
) -> Locator:
    """Execution 903, a recent, unacknowledged high alert (so the banner and the detail
    would both offer an acknowledgement), then the dashboard with `user` signed in and
    live; returns 903's gallery card."""
    await executions.add_pending(903)
    await executions.store_completion(903, Outcome(alert_level="high", has_smoke=True))
    # Recent: the banner loads the open alerts of the last 24 hours.
    await db_pool.execute(
        "UPDATE executions SET started_at = now() - interval '1 minute' WHERE id = 903"
    )
    await page.goto(f"{base_url}/")
    await sign_in_through_popup(page, user)
    await expect(page.locator("#connection-status")).to_have_attribute("data-state", "live")
    return card(page, 903)


async def test_a_viewer_sees_no_operator_controls(
    page: Page, oidc_gateway, executions: Executions, db_pool: asyncpg.Pool
) -> None:
    gateway = await oidc_gateway()
    high = await signed_in_beside_a_high_alert(page, gateway.base_url, "vic", executions, db_pool)
    await expect(page.locator("body")).to_have_attribute("data-can-operate", "false")
    # The alert is on the page, but nothing a viewer cannot do is offered for it.
    entry = page.locator("#alert-banner .alert-entry")
    await expect(entry).to_be_visible()
    await expect(entry.locator('[data-action="alert-open"]')).to_be_visible()
    await expect(entry.locator('[data-action="alert-ack"]')).to_be_hidden()
    await expect(high.locator(".card-check")).to_be_hidden()
    await high.locator(".card-open").click()
    await expect(page.locator("#detail")).to_be_visible()
    for selector in OPERATOR_CONTROLS:
        await expect(page.locator(selector)).to_be_hidden()
    # Nor does the keyboard shortcut mark anything.
    await page.keyboard.press("f")
    await expect(page.locator("#detail .triage-message")).to_have_text("")
    assert not await db_pool.fetchval("SELECT false_positive FROM executions WHERE id = 903")


async def test_an_operator_sees_the_controls_and_a_revoked_role_is_explained(
    page: Page, oidc_gateway, executions: Executions, db_pool: asyncpg.Pool
) -> None:
    gateway = await oidc_gateway()
    high = await signed_in_beside_a_high_alert(page, gateway.base_url, "ana", executions, db_pool)
    entry = page.locator("#alert-banner .alert-entry")
    await expect(entry.locator('[data-action="alert-ack"]')).to_be_visible()
    await expect(high.locator(".card-check")).to_be_visible()
    await high.locator(".card-open").click()
    for selector in OPERATOR_CONTROLS:
        await expect(page.locator(selector)).to_be_visible()

    # The operator role is taken away during the session: the click is refused, the page
    # says why in words and removes the controls.
    await db_pool.execute("UPDATE auth_sessions SET roles = ARRAY['viewer'] WHERE subject = 'ana'")
    await page.locator('#detail [data-action="toggle-fp"]').click()
    await expect(page.locator("#detail .triage-message")).to_contain_text(
        "no longer has the operator role"
    )
    for selector in OPERATOR_CONTROLS:
        await expect(page.locator(selector)).to_be_hidden()
    await expect(entry.locator('[data-action="alert-ack"]')).to_be_hidden()
    assert not await db_pool.fetchval("SELECT false_positive FROM executions WHERE id = 903")
