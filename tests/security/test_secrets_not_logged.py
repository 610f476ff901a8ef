"""Issue 19 #1: the shared token must never reach a log line (nor a URL the page uses).

Runs the real gateway process (uvicorn with its access log on, as in `make run`) and
reads everything it printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from httpx_sse import aconnect_sse

from services.gateway.auth.sessions import SESSION_COOKIE
from tests.support.net import free_port, wait_http_ready
from tests.support.processes import ServiceProcess

SECRET = "s3cret-do-not-log-7f9a"


async def test_the_token_never_appears_in_the_gateway_log(
    service_process: Callable[..., ServiceProcess], service_env: dict[str, str]
) -> None:
    port = free_port()
    env = {**service_env, "GATEWAY_PORT": str(port), "GATEWAY_TOKEN": SECRET}
    gateway = service_process(["services.gateway"], env, name="gateway")
    url = f"http://127.0.0.1:{port}"
    await wait_http_ready(url, gateway)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=10)) as http:
        # What the old dashboard did on every stream and image: the token in the URL.
        # It is refused now, and the access log line shows it redacted regardless.
        assert (await http.get("/api/events", params={"token": SECRET})).status_code == 401
        old_image = await http.get("/api/executions/1/thumbnail", params={"token": SECRET})
        assert old_image.status_code == 401
        assert (await http.get("/api/executions", params={"token": "wrong"})).status_code == 401
        # A script's bearer header, and the dashboard's one-time exchange for a cookie.
        bearer = {"Authorization": f"Bearer {SECRET}"}
        assert (await http.get("/api/executions", headers=bearer)).status_code == 200
        signed_in = await http.post("/auth/token", json={"token": SECRET})
        assert signed_in.status_code == 200
        assert SECRET not in signed_in.text and SECRET not in signed_in.headers["set-cookie"]
        assert (await http.get("/api/executions/1/thumbnail")).status_code == 404  # cookie
        async with aconnect_sse(http, "GET", "/api/events") as source:
            async for event in source.aiter_sse():
                assert event.event == "connection"
                break
        assert SESSION_COOKIE in http.cookies
    await asyncio.sleep(0.5)  # let the access log lines reach the file
    gateway.terminate()
    log = gateway.log_path.read_text()
    assert "GET /api/events?token=[REDACTED]" in log, log[-3000:]  # the access log is on
    assert SECRET not in log, [line for line in log.splitlines() if SECRET in line]
