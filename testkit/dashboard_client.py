"""An SSE client that behaves like the dashboard (services/gateway/static/live.js, app.js).

It follows GET /api/events, resumes with Last-Event-ID after a drop, and on a
`reset` event (or a reconnect the server could not resume) re-reads every page
of GET /api/executions. It records, per route, which executions it has seen in
a terminal state, so a test can tell what is on this "screen" and what is
missing or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

RECONNECT_DELAY_S = 0.2
REST_RETRY_DELAY_S = 0.3
REST_PAGE_SIZE = 200

# Routes by which a terminal state reaches the client.
BATCH = "execution:batch"
COMPLETE = "etl:stage2:complete"
FAILED = "etl:stage2:failed"
REST = "rest-after-reset"
ROUTES = (BATCH, COMPLETE, FAILED, REST)


@dataclass
class Screen:
    """What the client knows: completions and failures per route, and duplicate deliveries."""

    completed: dict[str, set[int]] = field(
        default_factory=lambda: {BATCH: set(), COMPLETE: set(), REST: set()}
    )
    # (execution id, retry_count) of each failure seen; REST records the final one.
    failed: dict[str, set[tuple[int, int]]] = field(
        default_factory=lambda: {FAILED: set(), REST: set()}
    )
    deliveries: Counter[tuple[str, object]] = field(default_factory=Counter)

    def saw_completion(self, route: str, execution_id: int) -> None:
        self.completed[route].add(execution_id)
        if route != REST:
            self.deliveries[(route, execution_id)] += 1

    def saw_failure(self, route: str, execution_id: int, retry_count: int) -> None:
        self.failed[route].add((execution_id, retry_count))
        if route != REST:
            self.deliveries[(route, (execution_id, retry_count))] += 1

    def completed_ids(self) -> set[int]:
        return set().union(*self.completed.values())

    def failed_keys(self) -> set[tuple[int, int]]:
        return set().union(*self.failed.values())

    def missing(self, completed: set[int], failed: dict[int, int]) -> dict[str, list[int]]:
        """Ids the database shows terminal that this screen does not show in that state.

        `failed` maps each failed execution to its final retry_count: an earlier,
        transient failure event does not count as showing the final failure.
        """
        failed_keys = self.failed_keys()
        return {
            "completed": sorted(completed - self.completed_ids()),
            "failed": sorted(i for i, n in failed.items() if (i, n) not in failed_keys),
        }

    def duplicates(self) -> dict[str, int]:
        """Deliveries beyond the first of the same event content, per route."""
        extra: Counter[str] = Counter()
        for (route, _), count in self.deliveries.items():
            extra[route] += count - 1
        return {route: extra[route] for route in (BATCH, COMPLETE, FAILED)}

    def ids_by_route(self) -> dict[str, int]:
        counts = {route: len(ids) for route, ids in self.completed.items()}
        counts[FAILED] = len({i for i, _ in self.failed[FAILED]})
        counts[REST] = len(self.completed[REST]) + len(self.failed[REST])
        return counts


class DashboardClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        silence_s: float,
        token: str | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        # No byte for this long (heartbeats included) means a dead connection: reconnect.
        self.silence_s = silence_s
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.screen = Screen()
        self.last_event_id: str | None = None
        self.connections = 0
        self.resets = 0
        self.resyncs = 0
        self.rest_reloads = 0
        self.rest_errors = 0
        self.stream_errors: Counter[str] = Counter()
        self.unknown_events: Counter[str] = Counter()
        self._reload_wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> DashboardClient:
        self._task = asyncio.create_task(self._run(), name=f"dashboard-{self.name}")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def check_alive(self) -> None:
        """Raise the client's own error if it crashed (a bug in the test, not the system)."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()

    async def _run(self) -> None:
        timeout = httpx.Timeout(10.0, read=self.silence_s)
        async with (
            httpx.AsyncClient(
                base_url=self.base_url, timeout=timeout, headers=self.headers
            ) as http,
            asyncio.TaskGroup() as tasks,
        ):
            tasks.create_task(self._reloader(http))
            while True:
                try:
                    await self._follow(http)
                    self.stream_errors["stream ended"] += 1
                except (httpx.HTTPError, SSEError) as exc:
                    self.stream_errors[type(exc).__name__] += 1
                await asyncio.sleep(RECONNECT_DELAY_S)

    # -- the stream ----------------------------------------------------------

    async def _follow(self, http: httpx.AsyncClient) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        async with aconnect_sse(http, "GET", "/api/events", headers=headers) as source:
            if source.response.status_code != 200:
                self.stream_errors[f"HTTP {source.response.status_code}"] += 1
                return
            async for event in source.aiter_sse():
                self.on_event(event)

    def on_event(self, event: ServerSentEvent) -> None:
        if event.id:
            self.last_event_id = event.id
        data: Any = json.loads(event.data) if event.data else None
        if event.event == "connection":
            self.connections += 1
            # Like live.js: a reconnect the server did not resume must reload.
            if self.connections > 1 and data["resumed_from"] is None:
                self.resyncs += 1
                self._reload_wanted.set()
        elif event.event == "reset":
            self.resets += 1
            self._reload_wanted.set()
        elif event.event == BATCH:
            for execution in data["executions"]:
                self.screen.saw_completion(BATCH, execution["id"])
        elif event.event == COMPLETE:
            self.screen.saw_completion(COMPLETE, data["execution_id"])
        elif event.event == FAILED:
            self.screen.saw_failure(FAILED, data["execution_id"], data["retry_count"])
        elif event.event != "heartbeat":
            self.unknown_events[event.event] += 1

    # -- reload from REST ---------------------------------------------------

    async def _reloader(self, http: httpx.AsyncClient) -> None:
        """Reload on request; requests during a reload coalesce into one more reload."""
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await self._read_all_pages(http)
            self.rest_reloads += 1

    async def _read_all_pages(self, http: httpx.AsyncClient) -> None:
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": REST_PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            try:
                response = await http.get("/api/executions", params=params)
            except httpx.HTTPError:
                response = None
            if response is None or response.status_code != 200:
                # 503 while the database is away, or the gateway is down: retry the page.
                self.rest_errors += 1
                await asyncio.sleep(REST_RETRY_DELAY_S)
                continue
            page = response.json()
            for item in page["items"]:
                if item["processing_stage"] == "stage2":
                    self.screen.saw_completion(REST, item["id"])
                elif item["processing_stage"] == "failed":
                    self.screen.saw_failure(REST, item["id"], item["retry_count"])
            cursor = page["next_cursor"]
            if cursor is None:
                return

    # -- figures -------------------------------------------------------------

    def figures(self, completed: set[int], failed: dict[int, int]) -> dict[str, Any]:
        missing = self.screen.missing(completed, failed)
        return {
            "ids_seen_by_route": self.screen.ids_by_route(),
            "ids_seen_only_via_rest": len(
                self.screen.completed[REST]
                - self.screen.completed[BATCH]
                - self.screen.completed[COMPLETE]
            ),
            "duplicates": self.screen.duplicates(),
            "missing": {kind: len(ids) for kind, ids in missing.items()},
            "missing_ids": missing,
            "connections": self.connections,
            "resets": self.resets,
            "resyncs_without_resume": self.resyncs,
            "rest_reloads": self.rest_reloads,
            "rest_errors_retried": self.rest_errors,
            "stream_errors": dict(self.stream_errors),
            "unknown_events": dict(self.unknown_events),
        }
