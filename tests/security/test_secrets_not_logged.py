"""Issue 19 #1: the shared token must never reach a log line (nor a URL the page uses).

The first test runs the real gateway process and reads everything it printed; the
second turns uvicorn's access log on (the gateway now runs with it off, but anyone may
start uvicorn with `--access-log`) and checks a query-string secret is redacted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest
from httpx_sse import aconnect_sse
from pydantic import ValidationError

from services.gateway.auth.sessions import SESSION_COOKIE
from shared.settings import EtlSettings
from testkit.net import free_port, wait_http_ready
from testkit.processes import ServiceProcess

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
    assert "auth_mode" in log, log[-3000:]  # the log was captured
    assert SECRET not in log, [line for line in log.splitlines() if SECRET in line]


@pytest.fixture
def service_logging() -> Iterator[None]:
    """The services' logging set-up for one test, the test runner's restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # uvicorn servers started earlier in this process may have cut these loggers off
    # (access_log=False: no propagation) or given them uvicorn's own handlers (a
    # Config with its default log_config); a gateway process starts with neither.
    saved = []
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.disabled, logger.level, logger.handlers[:]))
        logger.propagate, logger.disabled, logger.handlers[:] = True, False, []
        logger.setLevel(logging.NOTSET)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger, propagate, disabled, saved_level, saved_handlers in saved:
        logger.propagate, logger.disabled, logger.handlers[:] = propagate, disabled, saved_handlers
        logger.setLevel(saved_level)


def test_a_secret_in_a_logged_query_string_is_redacted(
    service_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.logs import configure_logging

    configure_logging("INFO", "gateway")
    # Exactly what uvicorn's access logger emits for a request (uvicorn/protocols/http).
    access = logging.getLogger("uvicorn.access")
    for path in (
        f"/api/events?token={SECRET}",
        f"/api/executions/1/image?last_event_id=1&TOKEN={SECRET}",
        f"/auth/callback?code={SECRET}&state=abc",
        f"/x?access_token={SECRET}",
    ):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 401)
    logging.getLogger("anything").warning(f"fetch failed for /api/events?token={SECRET}")
    err = capsys.readouterr().err
    assert err.count("[REDACTED]") == 5, err
    assert SECRET not in err
    assert "last_event_id=1" in err and "state=abc" in err  # the rest stays readable


def test_a_settings_error_names_the_setting_but_never_echoes_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Short, so pydantic's own truncation of long values cannot hide it by luck.
    secret = "hunter2"
    monkeypatch.setenv("DATABASE_URL", secret)
    monkeypatch.setenv("INGEST_PORT", "8081")
    monkeypatch.delenv("INGEST_TOKEN", raising=False)
    with pytest.raises(ValidationError) as refused:
        EtlSettings()
    assert "INGEST_PORT is set but INGEST_TOKEN is not" in str(refused.value)
    assert secret not in str(refused.value)
