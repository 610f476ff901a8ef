"""Ports and readiness for service subprocesses in tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx

from testkit.processes import ManagedProcess


def free_port() -> int:
    """A port nothing listens on right now (for a service subprocess to bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http_ready(
    url: str, process: ManagedProcess, *, path: str = "/readyz", timeout_s: float = 60.0
) -> None:
    """Wait until GET url+path answers 200; fail early with its output if the process died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s  # deadlock guard, not a timing assertion
    async with httpx.AsyncClient(timeout=5) as http:
        while loop.time() < deadline:
            try:
                if (await http.get(f"{url}{path}")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert process.running, f"{process.name} exited:\n{process.output()[-4000:]}"
            await asyncio.sleep(0.1)
    raise AssertionError(f"{process.name} not ready:\n{process.output()[-4000:]}")


async def read_until_closed(reader: asyncio.StreamReader, wait_s: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection (`wait_s`: a
    deadlock guard per read, not a timing assertion)."""
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), wait_s):
            chunks.append(chunk)
    return b"".join(chunks)
