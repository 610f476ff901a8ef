"""Many SSE connections from several client processes (bench/clients/swarm_member.py).

`async with Swarm(...) as swarm:` starts `members` processes, each holding its share
of `connections`, bound to its own source address (127.0.0.2, 127.0.0.3, …), and
waits until every one has connected. All processes read the same system clock, so
the arrival times they report compare with the parent's publish time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from testkit.processes import REPO_ROOT

# A member's answer carries one number per connection: lines of a few hundred KiB.
LINE_LIMIT = 1 << 26


def shares(total: int, members: int) -> list[int]:
    """`total` split over `members`, sizes differing by at most one."""
    base, extra = divmod(total, members)
    return [base + (1 if index < extra else 0) for index in range(members)]


class Swarm:
    def __init__(
        self,
        port: int,
        path: str,
        connections: int,
        members: int,
        marker: bytes,
        beat_marker: bytes,
        max_events: int,
        host: str = "127.0.0.1",
    ) -> None:
        self.sizes = [size for size in shares(connections, members) if size]
        self.argv = [
            [
                sys.executable,
                "-m",
                "bench.clients.swarm_member",
                f"--host={host}",
                f"--port={port}",
                f"--path={path}",
                f"--connections={size}",
                f"--source=127.0.0.{2 + index}",
                f"--marker={marker.decode()}",
                f"--beat-marker={beat_marker.decode()}",
                f"--max-events={max_events}",
            ]
            for index, size in enumerate(self.sizes)
        ]
        self.processes: list[asyncio.subprocess.Process] = []
        self.connect_s = 0.0

    async def start(self, within_s: float = 1900) -> Swarm:
        """Start the members; wait until all connected (each gives up after 1,800 s:
        40,000 handshakes took over 10 minutes on the gateway at load 33)."""
        started = time.monotonic()
        for argv in self.argv:
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=REPO_ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=LINE_LIMIT,
                )
            )
        hello = await asyncio.wait_for(
            asyncio.gather(*(self._read(p) for p in self.processes)), within_s
        )
        self.connect_s = time.monotonic() - started
        failed = [h for h in hello if "error" in h]
        if failed:
            raise ConnectionError(f"swarm members failed to connect: {failed}")
        return self

    @staticmethod
    async def _read(process: asyncio.subprocess.Process) -> dict[str, Any]:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise ConnectionError(f"swarm member {process.pid} exited ({await process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        """Send `command` to every member; their answers, in member order."""
        line = (json.dumps(command) + "\n").encode()
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(line)
            await process.stdin.drain()
        return list(await asyncio.gather(*(self._read(p) for p in self.processes)))

    async def beats(self) -> list[int]:
        """Heartbeats received so far, per connection (all members, in order)."""
        return [count for answer in await self.ask({"cmd": "beats"}) for count in answer["beats"]]

    async def wait_for(self, event: int, sent: float, within_s: float) -> tuple[int, list[float]]:
        """(connections that got event `event`, their delays from `sent` in seconds)."""
        command = {"cmd": "wait", "event": event, "sent": sent, "within_s": within_s}
        answers = await self.ask(command)
        delays = [d for answer in answers for d in answer["delays_s"]]
        return sum(answer["received"] for answer in answers), delays

    async def status(self) -> dict[str, int]:
        answers = await self.ask({"cmd": "status"})
        return {key: sum(a[key] for a in answers) for key in ("held", "lost", "extra_events")}

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None and process.stdin is not None:
                with contextlib.suppress(OSError):  # it may have exited already
                    process.stdin.write(b'{"cmd": "close"}\n')
                    process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def __aenter__(self) -> Swarm:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
