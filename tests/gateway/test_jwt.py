"""Bearer JWTs checked against the issuer's JWKS, served over HTTP with keys made here."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.gateway.auth import AdminDep, OperatorDep
from testkit.gateway import Gateway, GatewayFactory
from testkit.oidc_issuer import JwtIssuer, new_key


@pytest.fixture
async def issuer() -> AsyncIterator[JwtIssuer]:
    started = await JwtIssuer().start()
    yield started
    await started.stop()


def add_role_routes(gateway: Gateway) -> None:
    """An operator-only and an admin-only state change, as issue 14's routes will be."""
    app: Any = gateway.server.config.app

    async def operator_action(user: OperatorDep) -> dict[str, Any]:
        return {"name": user.name, "roles": user.role_names}

    async def admin_action(user: AdminDep) -> dict[str, Any]:
        return {"name": user.name}

    app.add_api_route("/api/test/operator", operator_action, methods=["POST"])
    app.add_api_route("/api/test/admin", admin_action, methods=["POST"])


ClientOf = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_of(gateway_factory: GatewayFactory, issuer: JwtIssuer) -> AsyncIterator[ClientOf]:
    """Factory: `await client_of(**settings)` -> an HTTP client of a gateway that trusts
    `issuer` (with the test-only role routes), closed at teardown."""
    async with contextlib.AsyncExitStack() as clients:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            gateway = await gateway_factory(
                oidc_issuer=issuer.url, oidc_client_id=issuer.audience, **overrides
            )
            add_role_routes(gateway)
            return await clients.enter_async_context(
                httpx.AsyncClient(base_url=gateway.base_url, timeout=30)
            )

        yield make


@pytest.fixture
async def http(client_of: ClientOf) -> httpx.AsyncClient:
    return await client_of(oidc_jwks_min_refresh_s=0.0, auth_failures_per_minute=1000)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused(http: httpx.AsyncClient, token: str, reason: str) -> None:
    response = await http.get("/api/executions", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert reason in response.json()["detail"], response.json()
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_valid_token_reads_and_its_roles_come_from_the_zitadel_claim(
    http: httpx.AsyncClient, issuer: JwtIssuer
) -> None:
    viewer = issuer.token("viewer")
    assert (await http.get("/api/executions", headers=bearer(viewer))).status_code == 200
    operator = issuer.token("operator")
    answer = await http.post("/api/test/operator", headers=bearer(operator))
    assert answer.status_code == 200, answer.text
    # The name the audit trail records, and the roles the operator role includes.
    assert answer.json() == {"name": "ana", "roles": ["viewer", "operator"]}
    admin = issuer.token("admin")
    assert (await http.post("/api/test/admin", headers=bearer(admin))).status_code == 200


async def test_no_role_or_a_lower_role_is_forbidden(
    http: httpx.AsyncClient, issuer: JwtIssuer
) -> None:
    nobody = issuer.token()  # a valid user with no role in this project
    answer = await http.get("/api/executions", headers=bearer(nobody))
    assert answer.status_code == 403
    assert "viewer role" in answer.json()["detail"]
    viewer = issuer.token("viewer", "researcher")  # unknown role names grant nothing
    assert (await http.post("/api/test/operator", headers=bearer(viewer))).status_code == 403
    operator = issuer.token("operator")
    answer = await http.post("/api/test/admin", headers=bearer(operator))
    assert answer.status_code == 403
    assert "admin role" in answer.json()["detail"]


async def test_role_escalation_by_editing_the_claims_fails_the_signature(
    http: httpx.AsyncClient, issuer: JwtIssuer
) -> None:
    header, payload, signature = issuer.token("viewer").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(issuer.roles("admin"))
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = f"{header}.{forged}.{signature}"
    assert (await http.post("/api/test/admin", headers=bearer(token))).status_code == 401
    await refused(http, token, "signature does not verify")


async def test_a_tampered_signature_is_refused(http: httpx.AsyncClient, issuer: JwtIssuer) -> None:
    header, payload, signature = issuer.token("viewer").split(".")
    flipped = ("A" if signature[5] != "A" else "B").join([signature[:5], signature[6:]])
    await refused(http, f"{header}.{payload}.{flipped}", "signature does not verify")


async def test_expired_and_not_yet_valid_tokens_are_refused_beyond_the_skew(
    http: httpx.AsyncClient, issuer: JwtIssuer
) -> None:
    now = int(time.time())
    await refused(http, issuer.token("viewer", exp=now - 120, iat=now - 600), "expired")
    await refused(http, issuer.token("viewer", nbf=now + 600), "not valid yet")
    # Within the bounded skew (30 s by default) a small clock difference is tolerated.
    within = issuer.token("viewer", exp=now - 5)
    assert (await http.get("/api/executions", headers=bearer(within))).status_code == 200


async def test_wrong_audience_and_wrong_issuer_are_refused(
    http: httpx.AsyncClient, issuer: JwtIssuer
) -> None:
    await refused(http, issuer.token("admin", aud="another-app"), "another audience")
    await refused(http, issuer.token("admin", iss="https://evil.example"), "another issuer")
    await refused(http, issuer.token("admin", exp=None), "exp")


async def test_alg_none_and_hmac_with_the_public_key_are_refused(
    http: httpx.AsyncClient, issuer: JwtIssuer
) -> None:
    claims = issuer.claims(**issuer.roles("admin"))
    key = issuer.published[0]
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": key.kid})
    await refused(http, unsigned, "algorithm 'none' is not accepted")
    # The classic confusion: HS256 "signed" with the issuer's public key as the secret.
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode()
    ).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    confused = b".".join([header, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    await refused(http, confused, "algorithm 'HS256' is not accepted")


async def test_an_unknown_kid_is_refused_and_a_rotated_key_is_picked_up(
    http: httpx.AsyncClient, issuer: JwtIssuer
) -> None:
    stranger = new_key()  # never published: someone else's key
    token = issuer.sign(issuer.claims(**issuer.roles("admin")), key=stranger)
    await refused(http, token, "unknown key")

    # The issuer rotates: a new key is published, tokens name it by kid.
    rotated = new_key()
    issuer.published.append(rotated)
    fresh = issuer.sign(issuer.claims(**issuer.roles("viewer")), key=rotated)
    assert (await http.get("/api/executions", headers=bearer(fresh))).status_code == 200
    # Keys published side by side both verify (tokens signed before the rotation).
    old = issuer.token("viewer")
    assert (await http.get("/api/executions", headers=bearer(old))).status_code == 200


async def test_the_jwks_is_cached(http: httpx.AsyncClient, issuer: JwtIssuer) -> None:
    token = issuer.token("viewer")
    for _ in range(5):
        assert (await http.get("/api/executions", headers=bearer(token))).status_code == 200
    assert issuer.jwks_fetches == 1


async def test_unknown_kids_cannot_make_the_gateway_hammer_the_issuer(
    client_of: ClientOf, issuer: JwtIssuer
) -> None:
    http = await client_of(oidc_jwks_min_refresh_s=60.0)
    for _ in range(5):
        token = issuer.sign(issuer.claims(), key=new_key())
        await refused(http, token, "unknown key")
    assert issuer.jwks_fetches == 1


async def test_failed_token_checks_are_rate_limited(client_of: ClientOf, issuer: JwtIssuer) -> None:
    http = await client_of(auth_failures_per_minute=3)
    for _ in range(3):
        await refused(http, issuer.token("viewer", aud="other"), "another audience")
    limited = await http.get("/api/executions", headers=bearer(issuer.token("viewer")))
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"
