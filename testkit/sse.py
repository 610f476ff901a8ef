"""SSE clients for tests and benchmarks.

`SseRecorder`: reads one connection in the background and keeps every event.
`SseConnector` / `SseReader`: open connections and read them event by event.
`SseThread`: one connection read in a thread, for tests without an event loop
(the container tests drive podman with blocking calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse, connect_sse

from testkit.waiting import WAIT_S

RECORDER_WAIT_S = 60.0  # deadlock guard only


@dataclass(frozen=True, slots=True)
class Received:
    event: str
    data: Any  # parsed JSON
    id: str


class SseRecorder:
    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        path: str = "/api/events",
    ) -> None:
        self.base_url = base_url
        self.headers = headers or {}
        self.params = params or {}
        self.path = path
        self.events: list[Received] = []
        self.ended = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def __aenter__(self) -> SseRecorder:
        self._task = asyncio.create_task(self._read())
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait(
            {waiter, self._task}, timeout=RECORDER_WAIT_S, return_when="FIRST_COMPLETED"
        )
        waiter.cancel()
        if not self._connected.is_set():
            raise AssertionError(f"SSE connection failed: {self._error!r}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        try:
            async with (
                httpx.AsyncClient(
                    base_url=self.base_url, timeout=httpx.Timeout(10, read=None)
                ) as http,
                aconnect_sse(
                    http, "GET", self.path, headers=self.headers, params=self.params
                ) as source,
            ):
                source.response.raise_for_status()
                async for sse in source.aiter_sse():
                    data = json.loads(sse.data) if sse.data else None
                    self.events.append(Received(sse.event, data, sse.id))
                    self._connected.set()
        except httpx.HTTPError as exc:
            self._error = exc
        finally:
            self.ended.set()

    def of(self, event: str) -> list[Received]:
        return [e for e in self.events if e.event == event]

    def data_events(self) -> list[Received]:
        """Everything but the control events (connection, heartbeat)."""
        return [e for e in self.events if e.event not in ("connection", "heartbeat")]

    async def wait_for(self, predicate: Callable[[SseRecorder], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORDER_WAIT_S
        while not predicate(self):
            if self.ended.is_set():
                raise AssertionError(f"stream ended ({self._error!r}) waiting for {what}")
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.events}")
            await asyncio.sleep(0.05)


class SseReader:
    """Reads one SSE connection event by event (heartbeats skipped unless asked for)."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.response = source.response
        self._events = source.aiter_sse()

    async def next(self, *, skip_heartbeats: bool = True) -> ServerSentEvent:
        while True:
            event = await asyncio.wait_for(anext(self._events), WAIT_S)
            if skip_heartbeats and event.event == "heartbeat":
                continue
            return event

    async def next_json(self) -> tuple[ServerSentEvent, Any]:
        event = await self.next()
        return event, json.loads(event.data)


@dataclass
class SseConnector:
    base_url: str
    stack: list[Any]

    async def connect(self, **options: Any) -> SseReader:
        """`open(**options)`, and return the reader already past the `connection` event."""
        reader = await self.open(**options)
        first = await reader.next()
        assert first.event == "connection", first
        return reader

    async def open(
        self,
        *,
        last_event_id: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> SseReader:
        all_headers = dict(headers or {})
        if last_event_id is not None:
            all_headers["Last-Event-ID"] = last_event_id
        client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(WAIT_S, read=None),
            transport=transport,
        )
        self.stack.append(client)
        context = aconnect_sse(client, "GET", "/api/events", params=params, headers=all_headers)
        source = await context.__aenter__()
        self.stack.append(context)
        return SseReader(source)


SseFactory = Callable[[Any], SseConnector]  # gateway (anything with `base_url`) -> connector


async def close_all(connector: SseConnector) -> None:
    for item in reversed(connector.stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            # The server may already have closed this stream.
            with contextlib.suppress(httpx.HTTPError, RuntimeError):
                await item.__aexit__(None, None, None)
    connector.stack.clear()


class SseThread(threading.Thread):
    """Reads `path` into a queue of (event, parsed data) until the stream ends."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        guard_s: float = WAIT_S,
        path: str = "/api/events",
    ) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.headers = headers or {}
        self.guard_s = guard_s  # deadlock guard for `next_event`, not a performance bound
        self.path = path
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.error: BaseException | None = None

    def run(self) -> None:
        timeout = httpx.Timeout(10.0, read=120.0)
        try:
            with (
                httpx.Client(base_url=self.base_url, timeout=timeout, headers=self.headers) as http,
                connect_sse(http, "GET", self.path) as source,
            ):
                source.response.raise_for_status()
                for event in source.iter_sse():
                    self.events.put((event.event, json.loads(event.data) if event.data else None))
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def next_event(self) -> tuple[str, Any]:
        try:
            return self.events.get(timeout=self.guard_s)
        except queue.Empty:
            raise AssertionError(
                f"no SSE event for {self.guard_s} s (error: {self.error!r})"
            ) from None
