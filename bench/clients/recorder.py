"""Run bench.clients.sse_recorder as a subprocess and collect what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.harness.infra import REPO_ROOT


@dataclass
class Receipt:
    event: str
    ids: list[int]
    received_at: float
    timestamp: str | None = None


@dataclass
class Recorder:
    """`async with Recorder(url) as rec:` — rec.receipts grows as events arrive.

    `module` is the client program (the SSE client, or bench.clients.stream_tap
    with `args`); each prints one JSON line per event.
    """

    url: str
    module: str = "bench.clients.sse_recorder"
    args: tuple[str, ...] = ()
    receipts: list[Receipt] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Recorder:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            self.url,
            *self.args,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), 30)
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            data: dict[str, Any] = json.loads(line)
            if data.get("ready"):
                self._ready.set()
                continue
            self.receipts.append(
                Receipt(data["event"], data.get("ids", []), data["t"], data.get("timestamp"))
            )

    def first_receipt(self, events: tuple[str, ...]) -> dict[int, float]:
        """Execution id → when it first arrived in one of `events`."""
        first: dict[int, float] = {}
        for receipt in self.receipts:
            if receipt.event in events:
                for execution_id in receipt.ids:
                    first.setdefault(execution_id, receipt.received_at)
        return first

    async def wait_for_ids(self, ids: set[int], events: tuple[str, ...], within_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline:
            if ids <= self.first_receipt(events).keys():
                return True
            await asyncio.sleep(0.1)
        return False

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
