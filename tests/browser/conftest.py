"""Browser test fixtures: the real gateway process, headless Debian Chromium, a page.

Chromium is the system's /usr/bin/chromium (`make browser-deps` installs it);
no browser is ever downloaded. Each test starts its own gateway (it serves the
test's own database and exchange), forked from a server that imported the gateway
once per pytest process (`testkit.forked`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Page, async_playwright

from testkit import forked
from testkit.browser import TOKEN, page_in
from testkit.dashboard_data import Executions
from testkit.gateway import GatewayProcess, GatewayStarter
from testkit.waiting import WAIT_S

CHROMIUM = Path("/usr/bin/chromium")
# What `python -m services.gateway` imports, including what uvicorn imports by name
# (not the __main__ module itself: runpy runs that afresh in each gateway).
GATEWAY_IMPORTS = [
    "services.gateway.worker",
    "uvicorn.loops.auto",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.websockets.auto",
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def gateway_forks() -> Iterator[None]:
    """The fork server that starts the gateways, with the gateway imported (once)."""
    forked.preload(GATEWAY_IMPORTS)
    yield
    forked.stop_server()


@pytest.fixture
async def start_gateway(
    service_env: dict[str, str], image_dir: Path, gateway_forks: None
) -> AsyncIterator[GatewayStarter]:
    """Factory: await start_gateway(port=None) -> a ready gateway process with a token."""
    started: list[GatewayProcess] = []

    async def start(port: int | None = None) -> GatewayProcess:
        gateway = GatewayProcess(
            service_env, port=port, forked=True, gateway_token=TOKEN, image_dir=image_dir
        )
        started.append(gateway)
        return await gateway.start(within_s=WAIT_S)

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
async def gateway(start_gateway: GatewayStarter) -> GatewayProcess:
    return await start_gateway()


@pytest.fixture
def executions(db_pool: asyncpg.Pool, image_dir: Path) -> Executions:
    return Executions(db_pool, image_dir)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Path]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps`", pytrace=False)
    yield CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page; an uncaught script error in it fails the test."""
    # Fixed locale and zone: the same text (and the same screenshot) on every machine.
    async with page_in(browser, "en-GB") as opened:
        yield opened
