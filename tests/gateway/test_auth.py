"""GATEWAY_TOKEN on and off, its exchange for a cookie session, CSRF, headers, and CORS."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from services.gateway.auth import OperatorDep
from services.gateway.auth.sessions import SESSION_COOKIE
from testkit.gateway import Gateway, GatewayFactory
from testkit.sse import SseConnector, close_all

TOKEN = "s3cret-token"
API_PATHS = ["/api/executions", "/api/executions/1", "/api/cameras", "/api/executions/1/image"]


@pytest.fixture
async def secured(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory(gateway_token=TOKEN)


async def test_with_a_token_every_api_request_needs_it(secured: Gateway) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        for path in [*API_PATHS, "/api/events"]:
            for headers, params in [
                ({}, {}),
                ({"Authorization": "Bearer wrong"}, {}),
                ({}, {"token": "wrong"}),
                ({"Authorization": f"Basic {TOKEN}"}, {}),
            ]:
                response = await http.get(path, headers=headers, params=params)
                assert response.status_code == 401, (path, headers, params)
                assert "token" in response.json()["detail"]
                assert response.headers["www-authenticate"] == "Bearer"

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.get("/api/executions", headers=bearer)).status_code == 200
        assert (await http.get("/api/executions/1", headers=bearer)).status_code == 404
        # A secret in a URL ends up in logs and browser history: never accepted there.
        for path in [*API_PATHS, "/api/events"]:
            assert (await http.get(path, params={"token": TOKEN})).status_code == 401, path

        # Health, readiness and metrics stay open for probes and scrapers.
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await http.get(path)).status_code == 200, path


async def sign_in(http: httpx.AsyncClient, token: str = TOKEN) -> dict[str, Any]:
    response = await http.post("/auth/token", json={"token": token})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_token_is_exchanged_once_for_an_httponly_strict_cookie(
    secured: Gateway,
) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        before = (await http.get("/auth/session")).json()
        assert before["signed_in"] is False and before["token_sign_in"] is True
        refused = await http.post("/auth/token", json={"token": "wrong"})
        assert refused.status_code == 401
        response = await http.post("/auth/token", json={"token": TOKEN})
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        assert "secure" not in attributes  # plain HTTP here; see the TLS test below
        assert TOKEN not in cookie
        body = response.json()
        assert body["signed_in"] and body["user"]["roles"] == ["viewer", "operator", "admin"]
        assert body["csrf_token"]

        # From now on the cookie alone opens the API, the images and the stream.
        assert (await http.get("/api/executions")).status_code == 200
        assert (await http.get("/api/executions/1/image")).status_code == 404
        sse = SseConnector(secured.base_url, [])
        try:
            reader = await sse.open(
                headers={"Cookie": f"{SESSION_COOKIE}={http.cookies[SESSION_COOKIE]}"}
            )
            assert (await reader.next()).event == "connection"
        finally:
            await close_all(sse)


async def test_the_cookie_is_secure_over_tls(secured: Gateway) -> None:
    # Behind a TLS-terminating proxy (uvicorn trusts X-Forwarded-Proto from 127.0.0.1).
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        response = await http.post(
            "/auth/token", json={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}
        )
        attributes = {p.strip().lower() for p in response.headers["set-cookie"].split(";")}
        assert "secure" in attributes


async def test_sign_out_ends_the_session_and_needs_the_csrf_token(secured: Gateway) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        session = await sign_in(http)
        forged = await http.post("/auth/logout")  # what another site's form could send
        assert forged.status_code == 403
        assert "CSRF" in forged.json()["detail"]
        assert (await http.get("/api/executions")).status_code == 200
        cookie = http.cookies[SESSION_COOKIE]
        out = await http.post("/auth/logout", headers={"X-CSRF-Token": session["csrf_token"]})
        assert out.status_code == 200
        # The old cookie, replayed, is dead (the session row is gone on every replica).
        replay = await http.get("/api/executions", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
        assert replay.status_code == 401
        assert "session has expired or ended" in replay.json()["detail"]


async def test_state_changes_with_a_cookie_need_the_csrf_header(secured: Gateway) -> None:
    app: Any = secured.server.config.app

    async def change(user: OperatorDep) -> dict[str, str]:
        return {"by": user.name}

    app.add_api_route("/api/test/change", change, methods=["POST"])
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        session = await sign_in(http)
        assert (await http.post("/api/test/change")).status_code == 403
        wrong = await http.post("/api/test/change", headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        right = await http.post("/api/test/change", headers={"X-CSRF-Token": session["csrf_token"]})
        assert right.status_code == 200
        assert right.json() == {"by": "shared-token"}
        # A cross-origin sign-in form is refused outright.
        cross = await http.post(
            "/auth/token", json={"token": TOKEN}, headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
    # Bearer credentials are not sent by browsers on their own: no CSRF token needed.
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        bearer = await http.post("/api/test/change", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200


async def test_an_expired_session_ends_the_stream_with_a_clear_event(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(gateway_token=TOKEN, session_ttl_s=1.5)
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        await sign_in(http)
        cookie = {"Cookie": f"{SESSION_COOKIE}={http.cookies[SESSION_COOKIE]}"}
        sse = SseConnector(gateway.base_url, [])
        try:
            reader = await sse.open(headers=cookie)
            assert (await reader.next()).event == "connection"
            expired = await reader.next()
            assert expired.event == "session:expired"
            assert "sign in again" in json.loads(expired.data)["reason"]
            with pytest.raises(StopAsyncIteration):
                await reader.next()  # and the stream ends there
        finally:
            await close_all(sse)
        # A browser may still send the cookie (clocks differ): the server has ended it.
        later = await http.get("/api/executions", headers=cookie)
        assert later.status_code == 401
        assert "session has expired" in later.json()["detail"]


async def test_failed_sign_ins_are_rate_limited(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(gateway_token=TOKEN, auth_failures_per_minute=3)
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        for guess in ("a", "b", "c"):
            assert (await http.post("/auth/token", json={"token": guess})).status_code == 401
        # Even the right token waits now: guessing cannot go on at full speed.
        limited = await http.post("/auth/token", json={"token": TOKEN})
        assert limited.status_code == 429
        bearer = await http.get("/api/executions", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 429


async def test_security_headers_on_every_response(secured: Gateway) -> None:
    async with httpx.AsyncClient(base_url=secured.base_url) as http:
        responses = [
            await http.get("/"),
            await http.get("/healthz"),
            await http.get("/static/app.js"),
            await http.get("/api/executions"),  # 401
            await http.get("/api/executions", headers={"Authorization": f"Bearer {TOKEN}"}),
            await http.get("/no/such/path"),
            await http.get("/auth/session"),
        ]
    for response in responses:
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, response.url
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


async def test_without_a_token_the_api_is_open(gateway: Gateway, http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/executions")).status_code == 200
    assert (await http.get("/api/cameras")).status_code == 200
    # A stray token is harmless when auth is off.
    assert (await http.get("/api/executions", params={"token": "x"})).status_code == 200


async def test_cors_allows_only_the_configured_origins(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(cors_origins=["http://dashboard.example"])
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        allowed = await http.get("/api/executions", headers={"Origin": "http://dashboard.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://dashboard.example"
        other = await http.get("/api/executions", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = await http.options(
            "/api/events",
            headers={
                "Origin": "http://dashboard.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id",
            },
        )
        assert preflight.status_code == 200
        assert "last-event-id" in preflight.headers["access-control-allow-headers"].lower()


def _auth_off_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and "AUTH IS OFF" in r.getMessage()
    ]


async def test_one_loud_warning_at_start_up_when_auth_is_off(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    await gateway_factory(gateway_token=TOKEN)
    assert _auth_off_warnings(caplog) == []
    await gateway_factory()
    assert len(_auth_off_warnings(caplog)) == 1
