"""Issue 19 #2: request heads are bounded in bytes and time; connections are capped.

Before: no header bound (4 x 1 MB header lines accepted, 83 → 277 MB RSS for 50
connections), a half-sent head kept its connection for ever (20 still open after
180 s), and no cap on connections. All without a token.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from testkit.gateway import GatewayStarter
from testkit.net import read_until_closed

WAIT_S = 30.0  # deadlock guard, not a timing assertion


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_a_head_over_the_byte_bound_gets_431_and_is_closed(
    gateway_process: GatewayStarter,
) -> None:
    gateway = await gateway_process(GATEWAY_MAX_HEAD_BYTES="16384")
    reader, writer = await _open(gateway.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    # One 1 MB header line, sent in pieces, never finished: refused long before its end.
    line = b"X-Junk: " + b"a" * (1024 * 1024)
    with contextlib.suppress(ConnectionError):
        for start in range(0, len(line), 16384):
            writer.write(line[start : start + 16384])
            await writer.drain()
    answer = await read_until_closed(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]

    # A head inside the bound is served as before, big headers and all.
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=WAIT_S) as http:
        ok = await http.get("/healthz", headers={"X-Fill": "b" * 12000})
        assert ok.status_code == 200


async def test_a_head_not_finished_in_time_gets_408_and_a_silent_connection_is_closed(
    gateway_process: GatewayStarter,
) -> None:
    gateway = await gateway_process(GATEWAY_HEAD_TIMEOUT_S="1")
    half_reader, half_writer = await _open(gateway.port)
    half_writer.write(b"GET /api/executions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    silent_reader, silent_writer = await _open(gateway.port)

    # Both end on the server's side (before the fix neither ever did).
    assert (await read_until_closed(half_reader)).startswith(b"HTTP/1.1 408 ")
    assert await read_until_closed(silent_reader) == b""
    for writer in (half_writer, silent_writer):
        writer.close()

    # A keep-alive connection: the timer covers the second request's head too.
    reader, writer = await _open(gateway.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b'{"status":"ok"}'), WAIT_S)
    assert first.startswith(b"HTTP/1.1 200 ")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_past_the_connection_cap_a_request_gets_a_clear_503(
    gateway_process: GatewayStarter,
) -> None:
    gateway = await gateway_process(GATEWAY_MAX_CONNECTIONS="4")
    held = [await _open(gateway.port) for _ in range(4)]
    try:
        reader, writer = await _open(gateway.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_until_closed(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert answer.endswith(b"Service Unavailable")
    finally:
        for _, held_writer in held:
            held_writer.close()
    # Below the cap again: served.
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=WAIT_S) as http:
        for _ in range(50):
            if (await http.get("/healthz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the gateway did not serve again below its connection cap")
