"""Helpers for the dashboard tests: the gateway process, waiting, a second SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from playwright.async_api import Page, expect

from tests.support.processes import ServiceProcess

TOKEN = "browser-test-token"
WAIT_S = 30.0  # deadlock guard for anything the tests wait for

# Playwright's expect() polls until this deadlock guard; nothing is timed.
expect.set_options(timeout=WAIT_S * 1000)


@dataclass
class Gateway:
    url: str
    port: int
    process: ServiceProcess


GatewayStarter = Callable[..., Awaitable[Gateway]]


async def open_dashboard(page: Page, base_url: str) -> None:
    """Load the dashboard with the token in its URL and wait until it is live."""
    await page.goto(f"{base_url}/?token={TOKEN}")
    await expect(page.locator("#connection-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#gallery")).to_have_attribute("aria-busy", "false")


class StreamWatcher:
    """A second SSE client straight to the gateway: shows what the gateway has sent out.

    Tests use it to know the gateway has an event before they let the browser back in.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StreamWatcher:
        self._task = asyncio.create_task(self._read())
        self._task.add_done_callback(lambda _: self._changed.set())
        await self.wait_for(lambda events: any(name == "connection" for name, _ in events))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client,
            aconnect_sse(
                client, "GET", f"{self.base_url}/api/events", params={"token": TOKEN}
            ) as source,
        ):
            async for sse in source.aiter_sse():
                self.events.append((sse.event, json.loads(sse.data)))
                self._changed.set()

    async def wait_for(self, predicate: Callable[[list[tuple[str, Any]]], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while True:
                self._changed.clear()  # before the check: no append can slip between
                if predicate(self.events):
                    return
                if self._task is not None and self._task.done():
                    self._task.result()  # the stream failed: raise why
                    raise AssertionError("the gateway ended the watcher's stream")
                await self._changed.wait()
